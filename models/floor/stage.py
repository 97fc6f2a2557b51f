"""The floor as a pipeline stage (`run_stage(ctx)`) and as a command (`deploy-compare floor RUN_DIR`):
plan, run the groups, derive the rows, try Theano when the profile says so, save floor.json."""
from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from deploy_compare.core import cpuidle, results
from deploy_compare.core.config import PROFILES, FloorSettings, get_profile
from deploy_compare.core.kinds import CpuIdle, FloorGrouping
from deploy_compare.core.rundir import RunDir
from deploy_compare.models.floor import theano
from deploy_compare.models.floor.derived import (
    failed_not_run,
    floor_comparisons,
    graph_ratios,
    spread_rows,
    theano_row,
)
from deploy_compare.models.floor.plan import GROUPINGS, group_points, plan_points
from deploy_compare.models.floor.schedule import Scheduler
from deploy_compare.models.floor.schema import FloorPoint, FloorResults
from deploy_compare.models.floor.tables import print_summary
from deploy_compare.models.parity import ParityTolerance

if TYPE_CHECKING:
    from rich.console import Console

    from deploy_compare.core.context import RunContext


def measure(run_dir: RunDir, twins: Iterable[str], settings: FloorSettings, run_id: str, profile: str,
            console: Console, cpu_idle: str = CpuIdle.POLL) -> FloorResults:
    """The floor's points under idle policy `cpu_idle` (the load stage's, `LoadSettings.cpu_idle`: a serving
    tax subtracts this floor from served figures, so both are measured with idle CPUs doing the same)."""
    with cpuidle.hold(cpu_idle) as idle:
        console.print(f"floor: {idle.summary()}")
        floor = _measure(run_dir, twins, settings, run_id, profile, console)
    floor.cpu_idle = idle
    return floor


def _measure(run_dir: RunDir, twins: Iterable[str], settings: FloorSettings, run_id: str, profile: str,
             console: Console) -> FloorResults:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    t0 = time.perf_counter()
    points, not_run = plan_points(run_dir, twins, settings)
    groups = group_points(points, settings)
    total = sum(len(g.points) for g in groups)
    columns = (TextColumn("{task.description:<50}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("floor: starting", total=total)

        def on_point(p: FloorPoint) -> None:
            state = "ok" if p.ok else "FAILED"
            bar.update(task, advance=1, description=f"floor: {p.spec.label} t={p.threads} r={p.repeat} {state}")

        done = Scheduler(run_dir, settings, ParityTolerance(), on_point).run(groups)
    measured = [p for points_done, _ in done for p in points_done]
    attempt = None
    if settings.try_theano:  # after the measuring processes: pip's work must not share their cores
        with console.status(f"floor: trying {theano.REQUIREMENT} in a throwaway venv "
                            f"(at most {settings.theano_timeout_s:g} s)"):
            attempt = theano.attempt(settings, run_dir.logs / "floor")
    return FloorResults(
        run_id=run_id, profile=profile, settings=settings,
        grouping=f"{settings.grouping}: {GROUPINGS[settings.grouping]}", points=measured,
        not_run=not_run + failed_not_run(measured), spread=spread_rows(measured), graph_ratios=graph_ratios(measured),
        comparisons=floor_comparisons(measured),
        theano=theano_row(measured, theano.not_run(settings, profile, attempt), attempt),
        processes=[record for _, record in done], wall_seconds=time.perf_counter() - t0)


def _twins(run_dir: RunDir) -> list[str]:
    from deploy_compare.models.exporters.stage import load_manifest

    manifest = load_manifest(run_dir)
    return list(dict.fromkeys(r.twin for r in manifest.artifacts))


def run_stage(ctx: RunContext) -> None:
    settings = ctx.config.profile.floor
    twins = [t for t in ctx.config.profile.train.twins if t in _twins(ctx.run_dir)]
    floor = measure(ctx.run_dir, twins, settings, ctx.config.run_id, ctx.config.profile.name, ctx.console,
                    cpu_idle=ctx.config.profile.load.cpu_idle)
    results.save(floor, ctx.run_dir.floor)
    print_summary(floor, ctx.console)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a run folder holding trained twins and manifest.json")
    parser.add_argument("--profile", default="quick", choices=list(PROFILES), help="floor settings (default quick)")
    parser.add_argument("--twins", nargs="+", default=None, help="only these twins (default: all in the manifest)")
    parser.add_argument("--grouping", default=None, choices=list(FloorGrouping),
                        help="override the profile's process grouping")
    cpuidle.add_argument(parser)
    parser.add_argument("--try-theano", action="store_true", default=None,
                        help=f"also try `pip install {theano.REQUIREMENT}` + `import theano` in a throwaway venv "
                             "(needs the package index; on in the full and exhaustive profiles)")


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from deploy_compare.core.errors import UserError

    run_dir = RunDir(args.run_dir.resolve())
    if not run_dir.manifest.exists():
        raise UserError(f"{run_dir.manifest} does not exist: run `deploy-compare run --stages train export parity` "
                        "for this run folder first")
    args.log_dir = run_dir.logs
    settings = get_profile(args.profile).floor
    if args.grouping:
        settings = replace(settings, grouping=FloorGrouping(args.grouping))
    if getattr(args, "try_theano", None):
        settings = replace(settings, try_theano=True)
    known = _twins(run_dir)
    twins = args.twins or known
    unknown = [t for t in twins if t not in known]
    if unknown:
        raise UserError(f"twin(s) {', '.join(unknown)} have no artifacts in {run_dir.manifest}; "
                        f"known: {', '.join(known)}")
    console = Console(stderr=True)
    floor = measure(run_dir, twins, settings, run_dir.path.name, args.profile, console,
                    cpu_idle=args.cpu_idle or get_profile(args.profile).load.cpu_idle)
    results.save(floor, run_dir.floor)
    print_summary(floor, console)
    console.print(f"saved {run_dir.floor}")
    return 0
