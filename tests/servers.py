"""Real servers for the tests (serving, load, docker): start TorchServe natively on free loopback ports for a
run folder, wait until ready, yield it with its endpoints, stop it. Test code only: not installed.

    with tests.servers.running_torchserve(spine_run, twins=("mlp",), formats=("torchscript",)) as ts:
        ts.endpoints()   # REST + gRPC Endpoints (headers hold the inference token)

`tests/conftest.py` wraps it as the session fixture `torchserve_mlp`.
"""
from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import replace

from deploy_compare.core.config import ServeSettings
from deploy_compare.core.rundir import RunDir
from deploy_compare.serving.stacks import import_servers, plan_server


@contextlib.contextmanager
def running_server(name: str, run_dir: RunDir, settings: ServeSettings, formats: tuple[str, ...],
                   ready_timeout: float) -> Iterator:
    """Server `name` planned for `run_dir` under `settings` (its launcher and twins), started and ready; stopped
    on every exit path."""
    import_servers()
    planned = plan_server(name, run_dir, settings, list(formats))
    if planned.server is None:
        raise RuntimeError(f"{name} cannot run: {planned.not_run}")
    server = planned.server
    try:
        server.start()
        server.wait_ready(ready_timeout)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running_torchserve(run_dir: RunDir, twins: tuple[str, ...] = ("mlp",), formats: tuple[str, ...] = ("torchscript",),
                       settings: ServeSettings | None = None, ready_timeout: float = 120.0,
                       launcher: str = "native") -> Iterator:
    settings = replace(settings or ServeSettings(), launcher=launcher, twins=tuple(twins))
    with running_server("torchserve", run_dir, settings, formats, ready_timeout) as server:
        yield server


def docker_or_skip(server_cls: type) -> None:
    """Skip (with the reason and the enabling command) where the Docker launcher cannot run `server_cls`."""
    import pytest

    from deploy_compare.serving.base import NotAvailable
    from deploy_compare.serving.launchers.docker import DockerLauncher

    try:
        DockerLauncher().check(server_cls, ServeSettings())
    except NotAvailable as exc:
        pytest.skip(f"{exc.reason} (enable: {exc.enable_command})")


def host_listeners(port: int) -> set[str]:
    """The host addresses something listens on at TCP `port` (the host's socket list, `ss`)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, timeout=10,
                         check=True).stdout
    return {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}
