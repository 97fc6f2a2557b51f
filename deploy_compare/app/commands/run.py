"""`deploy-compare run`: the whole pipeline into `results/<run-id>/`."""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from deploy_compare.app.pipeline import STAGES, RunContext, run_pipeline
from deploy_compare.core import environment, ownership, results
from deploy_compare.core.config import PROFILES, ModelOptions, Profile, RunConfig, get_profile
from deploy_compare.core.kinds import OutputKind
from deploy_compare.core.rundir import RunDir, RunDirExists
from deploy_compare.serving.cli import add_launch_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="quick", choices=list(PROFILES),
                        help="quick (default; short windows, one repeat) or full (conventions' defaults)")
    parser.add_argument("--run-id", default=None, help="name of the run folder (default: UTC timestamp)")
    parser.add_argument("--results-dir", type=Path, default=Path("results"), help="where run folders go")
    parser.add_argument("--force", action="store_true", help="write into an existing run folder")
    parser.add_argument("--stages", nargs="+", default=None, choices=STAGES.names(),
                        help="run only these stages (default: all)")
    model = parser.add_argument_group("your own model (in place of the zoo's twins: no training)")
    model.add_argument("--model", default=None, metavar="PATH",
                       help="a .keras file, a SavedModel folder, a .pt2 program, a TorchScript .pt, "
                            "package.module:factory returning an nn.Module, or an .onnx file")
    model.add_argument("--name", default="", help="the model's name in the report (default: from PATH)")
    model.add_argument("--input-shape", type=int, nargs="+", default=(), metavar="D",
                       help="per-sample input shape, where the model declares none")
    model.add_argument("--input-dtype", default="", help="input dtype, e.g. float32 or int64 (default float32)")
    model.add_argument("--sample", default="", metavar="FILE.npy", help="a batch of inputs: the parity batch")
    model.add_argument("--state-dict", default="", help="module:factory only: a state dict to load into it")
    model.add_argument("--output-kind", default="", choices=["", *OutputKind],
                       help="what the output means (default: guessed from its shape)")
    add_launch_arguments(parser, launcher_default=None)


def for_model(profile: Profile, args: argparse.Namespace) -> tuple[Profile, ModelOptions]:
    """The profile and options of a `--model` run: the user's model is the one 'twin' every stage scopes to."""
    from deploy_compare.core.errors import UserError
    from deploy_compare.models.subjects.base import SubjectError
    from deploy_compare.models.subjects.stage import subject_name

    options = ModelOptions(path=args.model, name=args.name, input_shape=tuple(args.input_shape),
                           input_dtype=args.input_dtype, sample=args.sample, state_dict=args.state_dict,
                           output_kind=args.output_kind)
    try:
        options = replace(options, name=subject_name(options))
    except SubjectError as exc:
        raise UserError(str(exc)) from None
    only = (options.name,)
    profile = replace(profile, train=replace(profile.train, twins=only), floor=replace(profile.floor, twins=only),
                      serve=replace(profile.serve, twins=only), load=replace(profile.load, twins=only))
    return profile, options


def main(args: argparse.Namespace) -> int:
    from deploy_compare.core.errors import UserError

    profile = get_profile(args.profile)
    if args.launcher:
        profile = replace(profile, serve=replace(profile.serve, launcher=args.launcher))
    if args.allow_public_bind:
        profile = replace(profile, serve=replace(profile.serve, allow_public_bind=True))
    if args.server_logging:
        profile = replace(profile, serve=replace(profile.serve, server_logging=args.server_logging))
    if args.cpu_idle:
        profile = replace(profile, load=replace(profile.load, cpu_idle=args.cpu_idle))
    model = None
    if args.model:
        profile, model = for_model(profile, args)
    run_id = args.run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    config = RunConfig(profile=profile, run_id=run_id, results_root=args.results_dir.resolve(),
                       force=args.force, stages=tuple(args.stages or ()), model=model)
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
