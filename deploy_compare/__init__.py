"""deploy-compare: measured comparison of the TensorFlow/Keras and PyTorch deployment stacks.

Core package: typed results and their JSON round trip (`results`), statistics (`stats`), profiles
(`config`), the run folder (`rundir`), process helpers (`proc`), the environment record
(`environment`), the stage pipeline (`pipeline`), the command line (`cli`) and the report (`report`).
The implementations live in the top-level folders: `models/` (twins, exporters, in-process runtimes),
`serving/` (servers and launchers), `loadtests/` (locust and load modes).
"""

__version__ = "0.1.0"
