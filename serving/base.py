"""The server axis: one lifecycle (`Server.start/wait_ready/stop/logs/endpoints`) and the launcher
axis that runs it (`Launcher.launch` -> `Handle`): native process or Docker container.

A server renders its configs for a launcher (paths and bind host as the server will see them), then
the launcher runs it. Readiness is bounded polling of the server's health check that also scans the
server log for fatal lines and notices a dead process, so a broken server fails fast with its log.
"""
from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from deploy_compare.core.registry import Registry
from deploy_compare.serving.endpoint import Endpoint

if TYPE_CHECKING:
    from deploy_compare.core.config import ServeSettings
    from deploy_compare.serving.catalog import ServedModel
    from deploy_compare.serving.results import WorkerMemory


class ServerError(RuntimeError):
    """A server failed to start, became unhealthy, or refused its configuration."""


class NotAvailable(RuntimeError):
    """A server cannot run here (no binary, no image, no engine): becomes a `NotRun` record."""

    def __init__(self, reason: str, enable_command: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.enable_command = enable_command


@dataclass
class LaunchSpec:
    """What a launcher runs. Native uses `argv`/`env`/`cwd`; Docker uses `image`/`command`/`mounts`/`ports`."""

    name: str
    argv: list[str]  # native command line
    image: str  # pinned Docker image
    command: list[str]  # container command (paths as the container sees them)
    ports: dict[str, int]  # role -> port (the same inside and outside a container)
    mounts: dict[str, str] = field(default_factory=dict)  # host path -> container path
    writable: set[str] = field(default_factory=set)  # host paths mounted read-write (others read-only)
    env: dict[str, str] = field(default_factory=dict)  # extra environment (both launchers)
    cwd: Path | None = None  # native working directory
    container_cwd: str | None = None
    cpus: set[int] | None = None  # CPU pinning (sched_setaffinity / cpuset)
    shm_size: int | None = None  # a container's /dev/shm in bytes (None: the engine's default, 64 MB)


class Handle(ABC):
    """A running server instance, however launched."""

    started_at: float  # perf_counter at launch

    @abstractmethod
    def alive(self) -> bool: ...

    @abstractmethod
    def stop(self, timeout: float) -> None:
        """Stop and clean up everything launched (idempotent)."""

    @abstractmethod
    def pids(self) -> list[int]:
        """Host process ids of the server's processes (for CPU accounting and fault tests)."""

    @abstractmethod
    def log_text(self) -> str:
        """The server's console log so far."""

    def memory(self) -> dict[str, int]:
        """Launcher-level memory figures (a container's cgroup); none for a plain process group."""
        return {}

    def describe(self) -> dict[str, object]:
        """What to record about how the server ran (a container's image, id, user, cpuset); nothing natively."""
        return {}


class Launcher(ABC):
    name: ClassVar[str]
    bind_host: ClassVar[str]  # the address servers bind to, as seen inside their network namespace
    started_by: ClassVar[str]  # what the cold start's clock starts at (`Handle.started_at`)

    @abstractmethod
    def check(self, server_cls: type[Server], settings: ServeSettings) -> None:
        """Raise `NotAvailable` (reason + enabling command) if this launcher cannot run the server here."""

    @abstractmethod
    def path(self, host_path: Path, spec_mounts: dict[str, str]) -> str:
        """`host_path` as the server process will see it."""

    @abstractmethod
    def launch(self, spec: LaunchSpec, log_path: Path) -> Handle: ...


LAUNCHERS: Registry[type[Launcher]] = Registry("launcher")


class Server(ABC):
    """One server kind (TorchServe, TF Serving). Subclasses render configs and answer health checks."""

    name: ClassVar[str]
    binary: ClassVar[str]  # native executable name
    install_native: ClassVar[str]  # the command that installs the native binary
    image: ClassVar[str]  # Docker image (built by `make images`, or a pinned official tag)
    image_enable: ClassVar[str]  # the command that makes `image` present locally
    native_loopback: ClassVar[bool] = True  # False: the native binary cannot bind 127.0.0.1 only
    fatal_log: ClassVar[tuple[str, ...]] = ()  # regexes of log lines that mean "will never be ready"
    # the launcher choices (`ServeSettings.launcher`) under which a command runs this server without being named
    # (`ServeSettings.servers`, `--servers`); None: every choice, `auto` included
    default_launchers: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, launcher: Launcher, settings: ServeSettings, models: list[ServedModel], store: Path,
                 log_path: Path, ports: dict[str, int], cpus: set[int] | None = None) -> None:
        self.launcher = launcher
        self.settings = settings
        self.models = {m.served_name: m for m in models}
        self.store = Path(store)  # where this server's model files go (inside the run folder)
        # model files an earlier command wrote for this run (a finished run's): read, reused when they still
        # match, never written; set by the planner when the command writes to a folder of its own
        self.published_store: Path | None = None
        self.log_path = Path(log_path)
        self.ports = dict(ports)
        self.cpus = cpus
        self.handle: Handle | None = None
        self.ready_seconds: float | None = None

    # --- what subclasses provide ---
    @abstractmethod
    def prepare(self) -> LaunchSpec:
        """Write this run's configs (for `self.launcher`) and say what to launch."""

    @abstractmethod
    def healthy(self) -> bool:
        """One quick health probe (never raises for a server that is not up yet)."""

    @abstractmethod
    def endpoints(self) -> list[Endpoint]: ...

    @abstractmethod
    def model_load_seconds(self) -> dict[str, float]:
        """Model load time per served model, from the server's own metrics (part of the cold start)."""

    def worker_memory(self) -> dict[str, WorkerMemory]:
        """Memory of each served model's own worker process, by served name (none where the server runs
        every model in one process)."""
        return {}

    def record(self) -> dict[str, object]:
        """Settings to store with results (no secrets)."""
        return {"server": self.name, "launcher": self.launcher.name}

    # --- the shared lifecycle ---
    def start(self) -> Server:
        spec = self.prepare()
        self.handle = self.launcher.launch(spec, self.log_path)
        return self

    def wait_ready(self, timeout: float, poll: float = 0.2) -> float:
        """Poll `healthy()` until ready, at most `timeout` s; fail early on a dead process or a fatal
        log line. Returns seconds from launch to ready."""
        handle = self._running()
        patterns = [re.compile(p) for p in self.fatal_log]
        deadline = time.monotonic() + timeout
        while True:
            if self.healthy():
                self.ready_seconds = time.perf_counter() - handle.started_at
                return self.ready_seconds
            log = handle.log_text()
            fatal = next((m.group(0) for p in patterns for m in [p.search(log)] if m), None)
            if fatal or not handle.alive():
                why = f"log reports: {fatal.strip()}" if fatal else "its process exited"
                raise ServerError(f"{self.name} ({self.launcher.name}) failed to start: {why}. "
                                  f"Log: {self.log_path}\n--- last lines ---\n{log[-2500:]}")
            if time.monotonic() > deadline:
                raise ServerError(f"{self.name} ({self.launcher.name}) not ready after {timeout:.0f}s "
                                  f"(health check kept failing). Log: {self.log_path}\n{log[-1500:]}")
            time.sleep(poll)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.stop(self.settings.stop_timeout_s)

    def logs(self) -> str:
        return self.handle.log_text() if self.handle else ""

    def pids(self) -> list[int]:
        return self.handle.pids() if self.handle else []

    def _running(self) -> Handle:
        if self.handle is None:
            raise ServerError(f"{self.name} was not started")
        return self.handle

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


SERVERS: Registry[type[Server]] = Registry("server")


def chosen_servers(settings: ServeSettings) -> list[str]:
    """The servers a command runs: `settings.servers`, else every registered server whose `default_launchers`
    admit `settings.launcher` (Ray Serve: only where containers were asked for, `docker` or `both`)."""
    def by_default(cls: type[Server]) -> bool:
        return cls.default_launchers is None or settings.launcher in cls.default_launchers

    return list(settings.servers) or [n for n in SERVERS.names() if by_default(SERVERS.get(n))]


def choose_launcher(choice: str, server_cls: type[Server], settings: ServeSettings) -> Launcher:
    """`auto`: the first launcher (native, then docker) that can run `server_cls` here. An explicit
    choice that cannot run raises `NotAvailable` with its reason. Import the implementations first."""
    import deploy_compare.serving.launchers  # noqa: F401  (registers native and docker)

    names = LAUNCHERS.names() if choice == "auto" else [choice]
    reasons, commands = [], []
    for name in names:
        launcher = LAUNCHERS.get(name)()
        try:
            launcher.check(server_cls, settings)
        except NotAvailable as exc:
            reasons.append(f"{name}: {exc.reason}")
            commands.append(exc.enable_command)
            continue
        return launcher
    raise NotAvailable(f"{server_cls.name} cannot run here ({'; '.join(reasons)})", " OR ".join(commands))
