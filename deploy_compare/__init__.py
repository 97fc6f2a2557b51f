"""deploy-compare: measured comparison of the TensorFlow/Keras and PyTorch deployment stacks.

One namespace, layered (imports point down only; `make lint` checks it):
- `deploy_compare.app`: the command line, the stage pipeline, the commands and the report;
- `deploy_compare.loadtests` (folder `loadtests/`): locust, load modes, the load stage;
- `deploy_compare.serving` (folder `serving/`): servers, launchers, clients, images;
- `deploy_compare.models` (folder `models/`): twins, exporters, in-process runtimes, parity, floor;
- `deploy_compare.core` (folder `core/`): typed results, statistics, profiles, run folder, processes.
"""

__version__ = "0.1.0"
