"""What a pipeline stage receives: the run's configuration, its folder, a console and the stage timings.

Stages live in `models/`, `serving/`, `loadtests/` and the report; the pipeline that calls them lives in
the app (`deploy_compare.pipeline`). The context is here so that the stages import it from below.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console

from core import results
from core.config import RunConfig
from core.rundir import RunDir


@dataclass
class RunContext:
    config: RunConfig
    run_dir: RunDir
    console: Console = field(default_factory=lambda: Console(stderr=True))
    timings: list[results.StageTiming] = field(default_factory=list)
