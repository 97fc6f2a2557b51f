"""The pipeline: an ordered registry of stages, each `module:function(ctx: RunContext) -> None`.

Stages are resolved lazily (TensorFlow and PyTorch are imported only by the stages that need
them). Every stage's wall time is recorded in `stages.json`, also when it fails; a failing stage
stops the run with its error, and results gathered so far stay on disk.
"""
from __future__ import annotations

import importlib
import time
from collections.abc import Callable

from deploy_compare.core import proc, results
from deploy_compare.core.config import RunConfig
from deploy_compare.core.context import RunContext
from deploy_compare.core.registry import Registry

# name -> "module:function"; the order of registration is the order of execution.
STAGES: Registry[str] = Registry("stage")
for _name, _target in (
    ("train", "deploy_compare.models.training:run_stage"),         # twins trained, weights transplanted
    ("export", "deploy_compare.models.exporters.stage:run_stage"),  # SavedModel, TFLite, TorchScript, ONNX + manifest
    ("parity", "deploy_compare.models.parity:run_stage"),  # every artifact vs the reference on the held-out batch
    ("inspect", "deploy_compare.models.inspect:run_stage"),         # graph summary per artifact (op counts, opset)
    ("floor", "deploy_compare.models.floor:run_stage"),       # in-process runtime benchmarks
    ("serve", "deploy_compare.serving.stage:run_stage"),  # servers up (a session) + served parity + cold start + probe
    ("load", "deploy_compare.loadtests.stage:run_stage"),     # closed/open-loop load on the session's endpoints
    ("report", "deploy_compare.app.report:run_stage"),  # report.md / report.html / results.json
):
    STAGES.register(_name)(_target)


# `run --model`: the stages that take another function for a user's model (no training, no twins)
MODEL_STAGES: dict[str, str] = {"train": "deploy_compare.models.subjects.stage:run_stage"}


def target_of(name: str, config: RunConfig) -> str:
    return (config.model is not None and MODEL_STAGES.get(name)) or STAGES.get(name)


def resolve(target: str) -> Callable[[RunContext], None]:
    module_name, _, func_name = target.partition(":")
    return getattr(importlib.import_module(module_name), func_name)


def selected_stages(config: RunConfig) -> list[str]:
    names = STAGES.names()
    if not config.stages:
        return names
    unknown = [s for s in config.stages if s not in STAGES]
    if unknown:
        raise KeyError(f"unknown stage(s) {', '.join(unknown)}; stages are: {', '.join(names)}")
    return [n for n in names if n in config.stages]


def _record(ctx: RunContext, timing: results.StageTiming) -> None:
    """Replace this stage's earlier timing (a rerun with --stages keeps the others), save in stage order."""
    order = {name: i for i, name in enumerate(STAGES.names())}
    ctx.timings = sorted([t for t in ctx.timings if t.stage != timing.stage] + [timing],
                         key=lambda t: order.get(t.stage, len(order)))
    results.save(ctx.timings, ctx.run_dir.stages, list[results.StageTiming])


def run_pipeline(ctx: RunContext) -> None:
    if not ctx.timings and ctx.run_dir.stages.exists():
        ctx.timings = results.load(list[results.StageTiming], ctx.run_dir.stages)
    names = selected_stages(ctx.config)
    try:
        for i, name in enumerate(names):
            ctx.console.rule(f"[bold]stage: {name}")
            ctx.upcoming = tuple(names[i + 1:])
            t0 = time.perf_counter()
            try:
                resolve(target_of(name, ctx.config))(ctx)
                stop = proc.received_stop()
                if stop is not None:  # a library swallowed the interrupt and the stage went on: stop here
                    raise stop
            except BaseException as exc:
                stop = proc.received_stop()
                if stop is not None and exc is not stop:  # an error after a swallowed stop signal: the stop wins
                    exc = stop
                _record(ctx, results.StageTiming(stage=name, seconds=time.perf_counter() - t0, ok=False,
                                                 error=f"{type(exc).__name__}: {exc}"))
                if exc is stop:
                    raise stop from None
                raise
            _record(ctx, results.StageTiming(stage=name, seconds=time.perf_counter() - t0, ok=True))
    finally:  # resources a stage kept open for a later one (the servers): closed on every exit path
        ctx.close_resources()
