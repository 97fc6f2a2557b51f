"""The core: what every other package of deploy-compare builds on, and which imports none of them.

`registry` (plugins keyed by name), `results` (typed results, JSON round trip, atomic writes), `stats`
(windows and percentiles), `proc` (started processes and their lifecycle), `rundir` (the run folder),
`config` (profiles and settings), `context` (what a stage receives), `errors`, `environment`.
Layers, each importing only those below it (checked by import-linter in `make test`):
core -> models -> serving -> loadtests -> deploy_compare (CLI, pipeline, report).
"""
