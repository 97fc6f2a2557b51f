"""Native launcher: the server as a local process group (`deploy_compare.core.proc.ManagedProcess`):
own session, log file in the run folder, stop = SIGTERM to the group -> wait -> SIGKILL, tracked so
the CLI's `stop_all()` ends it on every exit path (Ctrl-C and SIGTERM included)."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from deploy_compare.core.proc import ManagedProcess, group_members
from deploy_compare.serving.base import LAUNCHERS, Handle, Launcher, LaunchSpec, NotAvailable, Server

if TYPE_CHECKING:
    from deploy_compare.core.config import ServeSettings


def resolve_binary(name: str) -> str | None:
    """`name` from this interpreter's environment first (the venv's console scripts), then PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


class NativeHandle(Handle):
    def __init__(self, proc: ManagedProcess) -> None:
        self.proc = proc
        assert proc.started_at is not None
        self.started_at = proc.started_at

    def alive(self) -> bool:
        return self.proc.alive()

    def stop(self, timeout: float) -> None:
        self.proc.stop(timeout)

    def pids(self) -> list[int]:
        return group_members(self.proc.pid) if self.proc.popen is not None else []

    def log_text(self) -> str:
        return self.proc.log_tail(200_000)


@LAUNCHERS.add
class NativeLauncher(Launcher):
    name = "native"
    bind_host = "127.0.0.1"
    started_by = "process start"

    def check(self, server_cls: type[Server], settings: ServeSettings) -> None:
        if resolve_binary(server_cls.binary) is None:
            raise NotAvailable(f"`{server_cls.binary}` is not installed (not in {Path(sys.executable).parent} "
                               "nor on PATH)", server_cls.install_native)
        if not server_cls.native_loopback and not settings.allow_public_bind:
            why = getattr(server_cls, "public_listeners", "it binds 0.0.0.0 (it cannot listen on 127.0.0.1 only)")
            raise NotAvailable(f"native {server_cls.name}: {why}; public listeners are off",
                               "rerun with --launcher docker (ports published on 127.0.0.1 "
                               "only), or accept a public listener with --allow-public-bind (deploy-compare run / "
                               "serve)")

    def path(self, host_path: Path, spec_mounts: dict[str, str]) -> str:
        return str(Path(host_path).resolve())

    def launch(self, spec: LaunchSpec, log_path: Path) -> Handle:
        binary = resolve_binary(spec.argv[0]) or spec.argv[0]
        env = {**os.environ, **spec.env}
        proc = ManagedProcess([binary, *spec.argv[1:]], log_path, env=env, cwd=spec.cwd, cpus=spec.cpus,
                              name=spec.name)
        return NativeHandle(proc.start())
