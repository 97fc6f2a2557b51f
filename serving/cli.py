"""`deploy-compare serve RUN_DIR`: start the servers for a run folder (same code as the serve stage),
check served parity, print the endpoints, and keep them up until Ctrl-C so you can point your own load
at them. The token is never printed: the inference key is in the key file whose path is shown.

The run folder is only read: this command's logs, and any model archive that must be rebuilt (an
archive is reused when it still matches the manifest), go to a new folder `RUN/serve-<UTC time>/`."""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from deploy_compare.core import cpuidle, ownership
from deploy_compare.core.config import PROFILES, get_profile
from deploy_compare.core.kinds import CpuIdle, LauncherChoice, ServerLogging
from deploy_compare.core.rundir import RunDir, session_folder


def add_launch_arguments(parser: argparse.ArgumentParser, launcher_default: str | None,
                         cpu_idle_default: str | None = None) -> None:
    """`--launcher`, `--allow-public-bind`, `--server-logging` and `--cpu-idle`, shared by `serve` and `run`."""
    parser.add_argument("--launcher", default=launcher_default, choices=[c.value for c in LauncherChoice],
                        help="how servers are started (auto: native where possible, else docker; both: each "
                             "server natively and in a container, side by side; default: "
                             f"{launcher_default or 'the profile' + chr(39) + 's'})")
    parser.add_argument("--allow-public-bind", action="store_true",
                        help="let a server that cannot bind 127.0.0.1 only (native TF Serving) listen on 0.0.0.0")
    parser.add_argument("--server-logging", default=None, choices=[c.value for c in ServerLogging],
                        help="TorchServe's logging: serving (the access log, startup, warnings and errors) or "
                             "default (TorchServe's own config: about a dozen lines per request); default: serving")
    cpuidle.add_argument(parser, default=cpu_idle_default)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a run folder with manifest.json (deploy-compare run ...)")
    # open-ended: idle cores spin only when asked (--cpu-idle poll, e.g. to point the run's conditions at it)
    add_launch_arguments(parser, launcher_default=LauncherChoice.AUTO.value, cpu_idle_default=CpuIdle.DEFAULT.value)
    parser.add_argument("--profile", default="quick", choices=list(PROFILES), help="serve settings to use")
    parser.add_argument("--fixed-ports", action="store_true",
                        help="use the servers' default ports (TorchServe 8080-8082/7070-7071, TF Serving "
                             "8500/8501) instead of free ones; fails clearly if one is taken")
    parser.add_argument("--twins", nargs="+", default=None, help="serve only these twins")
    parser.add_argument("--servers", nargs="+", default=None,
                        help="start these servers (default: all; rayserve only with --launcher docker or both)")
    parser.add_argument("--check-every", type=float, default=5.0, help="seconds between liveness checks")


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from deploy_compare.core.errors import UserError
    from deploy_compare.models.parity import ParityTolerance
    from deploy_compare.serving.base import NotAvailable, Server, ServerError, chosen_servers
    from deploy_compare.serving.catalog import ArtifactMismatch, PortInUse
    from deploy_compare.serving.session import served_parity
    from deploy_compare.serving.stacks import import_servers, plan_servers

    console = Console()
    try:
        run_dir = RunDir(args.run_dir.resolve()).require()
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    out = session_folder(run_dir, "serve")
    args.log_dir = out / "logs"
    ownership.set_run(run_dir.path, out / "logs" / "processes.json")
    console.print(f"outputs of this command: {out}")
    settings = replace(get_profile(args.profile).serve, launcher=args.launcher, fixed_ports=args.fixed_ports,
                       twins=tuple(args.twins or ()), allow_public_bind=args.allow_public_bind,
                       servers=tuple(args.servers or ()))
    if args.server_logging:
        settings = replace(settings, server_logging=args.server_logging)
    import_servers()
    servers: list[Server] = []
    try:
        plans = []
        for name in chosen_servers(settings):
            try:
                plans += plan_servers(name, run_dir, settings, out=out)
            except (ArtifactMismatch, PortInUse, NotAvailable, FileNotFoundError, ValueError) as exc:
                raise UserError(f"{name}: {exc}") from None
        for planned in plans:
            if planned.server is None:
                assert planned.not_run is not None
                console.print(f"[yellow]{planned.not_run.what}: not run:[/] {escape(planned.not_run.reason)}\n"
                              f"  enable with: {escape(planned.not_run.enable_command)}")
                continue
            server = planned.server
            name = f"{server.name} ({server.launcher.name})"
            servers.append(server)
            server.start()
            console.print(f"{name}: starting, log {server.log_path}")
            try:
                ready = server.wait_ready(settings.ready_timeout_s)
            except ServerError as exc:
                raise UserError(str(exc)) from None
            console.print(f"{name}: ready in {ready:.1f} s")
            for ep in server.endpoints():
                p = served_parity(ep, run_dir, ParityTolerance())
                verdict = "parity ok" if p.ok else f"[red]PARITY FAILED: {escape(p.problem())}[/]"
                console.print(f"  {ep.protocol:<4} {ep.served_name:<24} {ep.target}  ({ep.layout}; {verdict})")
            key_file = server.record().get("key_file")
            if key_file:
                console.print(f"  token auth on: send 'Authorization: Bearer <inference key>'; keys in {key_file}")
            if server.record().get("metrics_url"):
                console.print(f"  metrics: {server.record()['metrics_url']}")
        if not servers:
            raise UserError("no server could start here (see the reasons above)")
        # the kernel's choice unless asked: a serve session lasts until Ctrl-C, and polling would keep every
        # idle core spinning all that time (--cpu-idle poll gives load pointed here the load stage's conditions)
        with cpuidle.hold(args.cpu_idle) as idle:
            console.print(idle.summary())
            console.print("serving until Ctrl-C ...")
            while True:
                time.sleep(args.check_every)
                dead = [s.name for s in servers if s.handle is not None and not s.handle.alive()]
                if dead:
                    raise ServerError(f"{', '.join(dead)} stopped unexpectedly; see the logs in {run_dir.logs}")
    finally:
        for server in servers:
            server.stop()
        if servers:
            console.print("servers stopped")
