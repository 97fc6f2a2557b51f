"""`deploy-compare run`: the whole pipeline into `results/<run-id>/`."""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from core import environment, ownership, results
from core.config import PROFILES, RunConfig, get_profile
from core.rundir import RunDir, RunDirExists
from deploy_compare.pipeline import STAGES, RunContext, run_pipeline
from serving.cli import add_launch_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="quick", choices=list(PROFILES),
                        help="quick (default; short windows, one repeat) or full (conventions' defaults)")
    parser.add_argument("--run-id", default=None, help="name of the run folder (default: UTC timestamp)")
    parser.add_argument("--results-dir", type=Path, default=Path("results"), help="where run folders go")
    parser.add_argument("--force", action="store_true", help="write into an existing run folder")
    parser.add_argument("--stages", nargs="+", default=None, choices=STAGES.names(),
                        help="run only these stages (default: all)")
    add_launch_arguments(parser, launcher_default=None)


def main(args: argparse.Namespace) -> int:
    from core.errors import UserError

    profile = get_profile(args.profile)
    if args.launcher:
        profile = replace(profile, serve=replace(profile.serve, launcher=args.launcher))
    if args.allow_public_bind:
        profile = replace(profile, serve=replace(profile.serve, allow_public_bind=True))
    if args.server_logging:
        profile = replace(profile, serve=replace(profile.serve, server_logging=args.server_logging))
    if args.cpu_idle:
        profile = replace(profile, load=replace(profile.load, cpu_idle=args.cpu_idle))
    run_id = args.run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    config = RunConfig(profile=profile, run_id=run_id, results_root=args.results_dir.resolve(),
                       force=args.force, stages=tuple(args.stages or ()))
    run_dir = RunDir(config.run_dir)
    try:
        run_dir.create(force=config.force)
    except RunDirExists as exc:
        raise UserError(str(exc)) from None
    args.log_dir = run_dir.logs
    ownership.set_run(run_dir.path, run_dir.logs / "processes.json")
    results.save(config, run_dir.config)
    results.save(environment.capture(), run_dir.environment)
    ctx = RunContext(config=config, run_dir=run_dir)
    ctx.console.print(f"run folder: [bold]{run_dir.path}[/] (profile {profile.name})")
    run_pipeline(ctx)
    report = run_dir.file("report.html")
    ctx.console.print(f"\nrun folder: {run_dir.path}")
    if report.exists():
        ctx.console.print(f"report: [bold]{report}[/]")
    return 0
