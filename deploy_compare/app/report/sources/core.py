"""The run's own records: config.json, environment.json, stages.json."""
from __future__ import annotations

from pathlib import Path

from deploy_compare.app.report.model import ReportResults, SettingsView
from deploy_compare.app.report.sources import source
from deploy_compare.core import results
from deploy_compare.core.config import RunConfig
from deploy_compare.core.environment import Environment
from deploy_compare.core.stats import WindowPolicy


def window_text(w: WindowPolicy) -> str:
    return (f"warm-up >= {w.warmup_samples} calls and >= {w.warmup_seconds:g} s (excluded); window >= "
            f"{w.min_seconds:g} s and >= {w.min_samples} samples, bounded at {w.max_seconds:g} s")


@source("config.json", "run", "environment")
def config(path: Path, res: ReportResults) -> list[results.NotRun]:
    cfg = results.load(RunConfig, path)
    p = cfg.profile
    res.single_repeat = p.single_repeat
    res.settings = SettingsView(
        run_id=cfg.run_id, profile=p.name, profile_note=p.note, repeats_floor=p.floor.repeats,
        repeats_load=p.load.repeats, floor_threads=list(p.floor.thread_counts),
        floor_batches=list(p.floor.batch_sizes), floor_window=window_text(p.floor.window),
        load_window=window_text(p.load.window), model=cfg.model.name if cfg.model else "",
        serve={"launcher (requested)": p.serve.launcher, "workers": str(p.serve.workers),
               "batch size": str(p.serve.batch_size), "max batch delay": f"{p.serve.max_batch_delay_ms} ms"})
    return []


@source("environment.json", "run", "environment")
def environment(path: Path, res: ReportResults) -> list[results.NotRun]:
    res.environment = results.load(Environment, path)
    return []


@source("stages.json", "run", "environment")
def stages(path: Path, res: ReportResults) -> list[results.NotRun]:
    res.stages = results.load(list[results.StageTiming], path)
    return []
