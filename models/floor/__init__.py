"""The in-process floor: how fast each model runs inside one process, with no network.

Stage `floor` (`run_stage(ctx)`) and command `deploy-compare floor RUN_DIR [--profile ...] [--try-theano]`.

Points: per twin, every artifact in `manifest.json` (fp32 and quantized) through the runtime of its
format, plus every runtime of the trained twin that supports it (keras-eager, keras-function, torch-eager,
torch-compile, pytensor for the Theano row, null for the harness's own overhead): planned from the runtime
registry alone, each runtime class declaring what the floor needs (`models/runtimes/base.py`). Each point is
measured at every thread count of `FloorSettings.thread_counts` (threads = 1 also pins the process to one
core, `pin_cpu`), for `repeats` repeats, in a fresh process.

Grouping (`FloorSettings.grouping`):
- `isolated` (full profile): one process per model x runtime x threads x repeat: load, first inference
  and peak RSS are clean, and each point pays its framework's import (`import_seconds`).
- `family` (quick profile): one process per runtime library x threads x repeat, measuring its points one
  after another. Steady-state figures are unaffected; `import_seconds` belongs to the first point of the
  process only, and peak RSS is the process's peak so far (`group_size` > 1 marks it).
Threads = 1 processes run up to `parallel_processes` at a time, each pinned to its own core.

Saved to `run_dir.floor` (floor.json, a `FloorResults`), raw samples included, with the derived rows:
run-to-run spread of batch-1 p50 across repeats, the Computational-graph row (eager vs graph ratios) and
the Theano row (the attempt of `theano.py`, or why this profile did not try).

Modules, by concern: `schema` (results), `plan` (points and groups), `schedule` (processes on cores),
`measure` (inside a measuring process), `derived` (rows from the points), `theano` (the attempt),
`tables` (console), `stage` (stage and command).
"""
from deploy_compare.models.floor.schema import (
    BatchFigures,
    FloorPoint,
    FloorResults,
    GraphRatio,
    PointSpec,
    ProcessRecord,
    SpreadRow,
    TheanoAttempt,
    TheanoRow,
)
from deploy_compare.models.floor.stage import configure, main, measure, run_stage

__all__ = ["BatchFigures", "FloorPoint", "FloorResults", "GraphRatio", "PointSpec", "ProcessRecord", "SpreadRow",
           "TheanoAttempt", "TheanoRow", "configure", "main", "measure", "run_stage"]
