"""Processes: started in their own group, logged to the run folder, always stopped.

- `ManagedProcess`: a child in its own session/process group with stdout+stderr in a log file;
  `stop()` sends SIGTERM to the whole group, waits `timeout`, then SIGKILLs the group. Every
  started `ManagedProcess` is tracked, and `stop_all()` (called by the CLI on every exit path,
  SIGINT and SIGTERM included) stops whatever is still running.
- `run_isolated(target, payload)`: calls `module:function(payload)` in a fresh Python process and
  returns its plain-data result, or raises `IsolatedError` carrying the child's traceback. One
  crash cannot poison the caller, and memory figures of the child are clean.
- `install_signal_handlers()`: SIGTERM raises `Terminated` (a KeyboardInterrupt) in the main
  thread, so `finally` blocks run as they do on Ctrl-C.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM."""


def install_signal_handlers() -> None:
    def _on_term(signum: int, frame: object) -> None:
        raise Terminated(f"received signal {signum}")

    signal.signal(signal.SIGTERM, _on_term)


class ManagedProcess:
    def __init__(self, argv: Sequence[str], log_path: Path, *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, cpus: set[int] | None = None, name: str | None = None) -> None:
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.env = env
        self.cwd = cwd
        self.cpus = cpus
        self.name = name or Path(self.argv[0]).name
        self.popen: subprocess.Popen | None = None
        self.started_at: float | None = None  # perf_counter at spawn

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        cpus = self.cpus

        def _pre() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        try:
            self.started_at = time.perf_counter()
            self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=self.env, cwd=self.cwd, start_new_session=True,
                                          preexec_fn=_pre if cpus else None)
        except OSError as exc:
            raise RuntimeError(f"could not start {self.name} ({self.argv[0]}): {exc}") from exc
        finally:
            log.close()
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, max_bytes: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return data[-max_bytes:].decode("utf-8", "replace")

    def stop(self, timeout: float = 20.0) -> int | None:
        """Terminate the whole process group, wait up to `timeout`, then kill it. Idempotent."""
        if self.popen is None:
            return None
        try:
            if self.popen.poll() is None or _group_alive(self.popen.pid):
                _signal_group(self.popen.pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and (self.popen.poll() is None or _group_alive(self.popen.pid)):
                    time.sleep(0.05)
                if self.popen.poll() is None or _group_alive(self.popen.pid):
                    _signal_group(self.popen.pid, signal.SIGKILL)
                    self.popen.wait(timeout=10)
            return self.popen.returncode
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(self)

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group. Zombies re-parented to a PID 1 that does not
    reap them would otherwise make a stopped group look alive."""
    import psutil

    members = []
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(p.info["pid"]) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(p.info["pid"])
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def stop_all(timeout: float = 20.0, keep: frozenset[ManagedProcess] = frozenset()) -> None:
    """Stop every tracked process still running, except those in `keep`."""
    with _LIVE_LOCK:
        live = [p for p in _LIVE if p not in keep]
    for proc in live:
        proc.stop(timeout)


def live_processes() -> frozenset[ManagedProcess]:
    with _LIVE_LOCK:
        return frozenset(_LIVE)


class IsolatedError(RuntimeError):
    def __init__(self, target: str, message: str, child_traceback: str = "") -> None:
        super().__init__(f"{target} failed in its isolated process: {message}")
        self.target = target
        self.child_traceback = child_traceback


def run_isolated(target: str, payload: Any, *, timeout: float = 600.0, log_path: Path | None = None,
                 cpus: set[int] | None = None, env: dict[str, str] | None = None) -> Any:
    """Run `module:function(payload)` in a fresh interpreter; return its JSON-able result."""
    with tempfile.TemporaryDirectory(prefix="dc-isolated-") as tmp:
        inp, out = Path(tmp) / "in.json", Path(tmp) / "out.json"
        inp.write_text(json.dumps({"target": target, "payload": payload}))
        log = Path(log_path) if log_path else Path(tmp) / "child.log"
        proc = ManagedProcess([sys.executable, "-m", "core.proc", str(inp), str(out)], log,
                              env=env, cpus=cpus, name=target).start()
        try:
            assert proc.popen is not None
            proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise IsolatedError(target, f"timed out after {timeout}s; log: {log}") from None
        finally:
            proc.stop()
        if not out.exists():
            raise IsolatedError(target, f"exited with code {proc.popen.returncode} without a result; "
                                        f"last log lines:\n{proc.log_tail(2000)}")
        result = json.loads(out.read_text())
        if "error" in result:
            raise IsolatedError(target, result["error"], result.get("traceback", ""))
        return result["value"]


def _child_main(inp: str, out: str) -> int:
    import importlib
    import traceback

    request = json.loads(Path(inp).read_text())
    module_name, _, func_name = request["target"].partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        value = func(request["payload"])
        Path(out).write_text(json.dumps({"value": value}))
        return 0
    except BaseException as exc:  # reported to the parent with the traceback, never swallowed
        Path(out).write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}",
                                         "traceback": traceback.format_exc()}))
        return 1


def peak_rss_bytes() -> int:
    """Peak resident set size of this process: VmHWM of /proc/self/status (Linux).

    Not `getrusage().ru_maxrss`: Linux keeps that high-water mark across execve, so a child started by a
    large parent (fork, then exec) would report the parent's peak. VmHWM belongs to the new address space.
    """
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("/proc/self/status has no VmHWM line: peak RSS cannot be read on this system")


def tree_memory(pids: Sequence[int]) -> dict[str, int]:
    """Memory of a set of processes (a server's JVM and workers): summed current RSS, summed per-process
    peak (VmHWM) and the process count. Shared pages count once per process, as RSS does."""
    import psutil

    rss = hwm = count = 0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            rss += proc.memory_info().rss
            with open(f"/proc/{pid}/status", encoding="ascii") as fh:
                hwm += next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:")), 0)
            count += 1
        except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
            continue
    return {"rss_bytes": rss, "peak_rss_bytes": hwm, "processes": count}


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1], sys.argv[2]))
