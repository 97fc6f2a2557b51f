"""Build the servers for a run folder: verified artifacts, ports, CPU placement, launcher choice.
Used by the serve stage, `deploy-compare serve` and the test fixtures (one code path)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from deploy_compare.core.config import ServeSettings
from deploy_compare.core.kinds import LauncherChoice
from deploy_compare.core.results import NotRun
from deploy_compare.core.rundir import RunDir
from deploy_compare.serving.base import SERVERS, NotAvailable, Server, choose_launcher
from deploy_compare.serving.catalog import allocate_ports, served_models


def server_cpus(settings: ServeSettings) -> set[int] | None:
    """The core the server is pinned to when this process may use >= 2 cores (the load generator
    gets the others); None when there is nothing to separate or pinning is off."""
    available = sorted(os.sched_getaffinity(0))
    if settings.pin_server_cpu is None or len(available) < 2:
        return None
    if settings.pin_server_cpu not in available:
        raise ValueError(f"cannot pin the server to core {settings.pin_server_cpu}: this process may use "
                         f"cores {available}")
    return {settings.pin_server_cpu}


@dataclass
class Planned:
    server: Server | None
    not_run: NotRun | None


def launcher_choices(settings: ServeSettings) -> list[str]:
    """`both` = every server natively and in a container, side by side; any other choice is one launcher."""
    if settings.launcher != LauncherChoice.BOTH:
        return [settings.launcher]
    if settings.fixed_ports:
        raise ValueError("--launcher both runs each server twice and cannot give both copies the fixed default "
                         "ports: omit --fixed-ports (free loopback ports are chosen and recorded)")
    return [LauncherChoice.NATIVE, LauncherChoice.DOCKER]


def plan_servers(name: str, run_dir: RunDir, settings: ServeSettings, formats: list[str] | None = None,
                 out: Path | None = None) -> list[Planned]:
    """`plan_server` once per launcher of `settings.launcher` (two for `both`)."""
    return [plan_server(name, run_dir, settings, formats, out, choice) for choice in launcher_choices(settings)]


def plan_server(name: str, run_dir: RunDir, settings: ServeSettings, formats: list[str] | None = None,
                out: Path | None = None, choice: str | None = None) -> Planned:
    """The server `name` for this run under launcher `choice` (default: `settings.launcher`), or a NotRun
    saying why it cannot run here and how to enable it. Raises (before anything starts) on a tampered
    artifact or a taken fixed port. With `out` (a command serving a finished run) the server writes its
    model files and logs under `out`, never in the run."""
    from deploy_compare.models.exporters.stage import load_manifest

    cls = SERVERS.get(name)
    choice = choice or settings.launcher
    side_by_side = settings.launcher == LauncherChoice.BOTH
    what = f"{name} ({choice})" if side_by_side else name
    try:
        launcher = choose_launcher(choice, cls, settings)
    except NotAvailable as exc:
        return Planned(None, NotRun(what=what, reason=exc.reason, enable_command=exc.enable_command))
    formats = formats if formats is not None else (list(settings.formats) or None)
    models = served_models(run_dir.path, load_manifest(run_dir), name, list(settings.twins) or None, formats,
                           settings.exclude)
    if not models:
        return Planned(None, NotRun(what=what, reason=f"the manifest holds no artifact {name} serves",
                                    enable_command="deploy-compare run --stages export --force"))
    writes = RunDir(out) if out is not None else run_dir
    # side by side, the container's log gets its own name (the native one keeps the usual path)
    log = f"{name}-{launcher.name}.log" if side_by_side and launcher.name != LauncherChoice.NATIVE else f"{name}.log"
    server = cls(launcher, settings, models, writes.artifacts / name, writes.logs / log,
                 allocate_ports(name, settings.fixed_ports), server_cpus(settings))
    if out is not None:
        server.published_store = run_dir.artifacts / name
    return Planned(server, None)


def import_servers() -> None:
    """Register every server implementation."""
    import deploy_compare.serving.rayserve.server
    import deploy_compare.serving.tfserving.server
    import deploy_compare.serving.torchserve.server  # noqa: F401
