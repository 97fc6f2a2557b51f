"""Processes: started in their own group, logged to the run folder, always stopped.

- `ManagedProcess`: a child in its own session/process group with stdout+stderr in a log file;
  `stop()` sends SIGTERM to the whole group, waits `timeout`, then SIGKILLs the group. Every
  started `ManagedProcess` is tracked, and `stop_all()` (called by the CLI on every exit path,
  SIGINT and SIGTERM included) stops whatever is still running.
- `run_isolated(target, payload)`: calls `module:function(payload)` in a fresh Python process and
  returns its plain-data result, or raises `IsolatedError` carrying the child's traceback. One
  crash cannot poison the caller, and memory figures of the child are clean.
- `install_signal_handlers()`: the first SIGINT or SIGTERM raises `Interrupted` / `Terminated` (both
  KeyboardInterrupts) in the main thread, so `finally` blocks run as they do on Ctrl-C; later ones are
  ignored so that the stopping can finish. A stop raised inside a finalizer (where Python only prints it as
  "Exception ignored") is delivered again to ordinary code.
- Children start with default signal dispositions (whatever this process ignores) and with
  `PR_SET_PDEATHSIG`; every started group is recorded in `deploy_compare.core.ownership`, whose watchdog stops it if
  this process dies without stopping it (SIGKILL included).
"""
from __future__ import annotations

import _thread
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deploy_compare.core import ownership
from deploy_compare.core.ownership import group_members as group_members  # re-exported: callers ask proc for a group

_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()
# set by the first stop signal: from then on no new process starts (a worker thread of a stage would
# otherwise start its next child while the main thread is stopping them)
_STOPPING = threading.Event()
_RECEIVED: Interrupted | None = None  # set by the stop-signal handler (see received_stop)
_REDELIVERIES = 10  # a stop swallowed by a finalizer is delivered again at most this often
_redelivered = 0
_ACTIVE_HOOK: list[Any] = [None]  # the unraisable hook install_signal_handlers set (not chained twice)


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGINT (Ctrl-C)."""

    signum = signal.SIGINT
    exit_code = 130  # 128 + signal number, what shells report for a program ended by it


class Terminated(Interrupted):
    """Raised in the main thread when the process receives SIGTERM."""

    signum = signal.SIGTERM
    exit_code = 143


def foreground_of_terminal() -> bool:
    """True when this process's group is the foreground group of its controlling terminal."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return True
        except OSError:
            continue
    return False


def install_signal_handlers() -> None:
    """SIGTERM and SIGINT raise once in the main thread, then are ignored while the command stops what
    it started (SIGKILL still ends it at once; the ownership watchdog then stops its servers).

    A SIGINT that was ignored on entry stays ignored unless this process is the foreground program of a
    terminal: a background job of a non-interactive shell (`cmd &`, `nohup cmd &`, many CI runners) is
    started with SIGINT ignored on purpose, so that a Ctrl-C at the terminal does not reach it; stop such
    a command with SIGTERM (`kill PID`) or Ctrl-C in the terminal that runs it in the foreground.
    """
    def _on_signal(signum: int, frame: object) -> None:
        global _RECEIVED
        _STOPPING.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        if _RECEIVED is None or _RECEIVED.signum != signum:
            _RECEIVED = (Terminated if signum == signal.SIGTERM else Interrupted)(
                f"received {signal.Signals(signum).name}")
        raise _RECEIVED

    def _on_unraisable(unraisable: Any) -> None:
        # The stop raised inside a finalizer (`__del__`, a weakref callback: TensorFlow's AtomicFunction.__del__
        # during an export, say) cannot propagate: Python would print it as "Exception ignored ... Traceback" and
        # go on. Deliver it again instead, so it raises at the next line of ordinary code (bounded: after
        # _REDELIVERIES tries the stage's end still re-raises it, see received_stop()).
        global _redelivered
        exc = unraisable.exc_value
        if not isinstance(exc, Interrupted) or exc is not _RECEIVED:
            previous_hook(unraisable)
            return
        if _redelivered < _REDELIVERIES:
            _redelivered += 1
            signal.signal(exc.signum, _on_signal)
            # later and from another thread: raised here, in the hook, it would be "ignored" once more
            threading.Thread(target=_interrupt_main_soon, args=(exc.signum,), daemon=True).start()

    global _redelivered
    reset_stop()
    _redelivered = 0
    previous_hook = sys.unraisablehook if sys.unraisablehook is not _ACTIVE_HOOK[0] else sys.__unraisablehook__
    _ACTIVE_HOOK[0] = _on_unraisable
    sys.unraisablehook = _on_unraisable
    signal.signal(signal.SIGTERM, _on_signal)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN or foreground_of_terminal():
        signal.signal(signal.SIGINT, _on_signal)


def _interrupt_main_soon(signum: int) -> None:
    time.sleep(0.05)  # the finalizer and the hook have returned by then
    _thread.interrupt_main(signum)


def reset_stop() -> None:
    """Forget a received stop signal: new processes may start and `received_stop()` is None again (a new
    command in the same process, e.g. a test calling the CLI in-process after a signal test)."""
    global _RECEIVED
    _RECEIVED = None
    _STOPPING.clear()


def received_stop() -> Interrupted | None:
    """The interrupt a stop signal raised, if one was received. Library code may catch and swallow it (a
    broad `except BaseException` in a converter, say); callers that see an error or a finished step after
    it re-raise this, so a stop is never turned into a failure or ignored."""
    return _RECEIVED


def exit_code(exc: KeyboardInterrupt) -> int:
    return exc.exit_code if isinstance(exc, Interrupted) else Interrupted.exit_code


_PR_SET_PDEATHSIG = 1
_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        import ctypes

        _LIBC = ctypes.CDLL(None, use_errno=True)  # loaded in the parent: nothing to load after fork
    return _LIBC


def default_signals() -> None:
    """Child-side setup (a `preexec_fn`): default dispositions for the signals a parent may ignore
    (a background job ignores SIGINT, the CLI ignores both while it stops). `subprocess`'s
    `restore_signals` resets SIGPIPE and SIGXFSZ only."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def _child_setup(parent: int, cpus: set[int] | None) -> None:
    default_signals()
    # the direct child dies with the thread that started it; its group is the watchdog's job
    _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    if cpus:
        os.sched_setaffinity(0, cpus)


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
        if _STOPPING.is_set():
            raise Interrupted(f"not starting {self.name}: this command is stopping")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        cpus, parent = self.cpus, os.getpid()
        _libc()
        try:
            self.started_at = time.perf_counter()
            wall = time.time()
            self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=self.env, cwd=self.cwd, start_new_session=True,
                                          preexec_fn=lambda: _child_setup(parent, cpus))
        except OSError as exc:
            raise RuntimeError(f"could not start {self.name} ({self.argv[0]}): {exc}") from exc
        finally:
            log.close()
        with _LIVE_LOCK:
            _LIVE.add(self)
        ownership.track_group(self.popen.pid, self.name, self.argv, self.log_path, wall)
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
            ownership.untrack_group(self.popen.pid)

    def run_to_end(self, timeout: float, stop_timeout: float = 5.0) -> int:
        """Start, wait up to `timeout` s for the process to end (TimeoutError after it); stopped either way.
        Returns its exit code."""
        self.start()
        try:
            assert self.popen is not None
            try:
                return self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"{self.name} did not finish within {timeout:g} s; log {self.log_path}") from None
        finally:
            self.stop(timeout=stop_timeout)

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_signal_group = ownership.signal_group


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
        proc = ManagedProcess([sys.executable, "-m", "deploy_compare.core.proc", str(inp), str(out)], log,
                              env=env, cpus=cpus, name=target).start()
        try:
            assert proc.popen is not None
            deadline = time.monotonic() + timeout
            while True:  # short waits: a stopping command (often waiting from another thread) ends it now
                try:
                    proc.popen.wait(timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    if _STOPPING.is_set():
                        raise Interrupted(f"{target} stopped: the command is stopping") from None
                    if time.monotonic() > deadline:
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


# JIT compiler threads, by the name the kernel shows (15 characters): HotSpot's C1/C2 (TorchServe's frontend)
# and Graal's JVMCI compilers
JIT_THREAD = re.compile(r"^(?:C1|C2|JVMCI) CompilerThre")


def jit_cpu_seconds(pids: Sequence[int]) -> float | None:
    """CPU time (user + system) so far of the JIT compiler threads of these processes; None when none of
    them has such a thread (no JVM, or the processes are gone). A server whose compilers still run is
    still changing speed: on a fresh TorchServe they used 20-40% of its core for ~14 s at 4 users here,
    while throughput rose from ~600 to ~1,500 req/s, and stayed under 2% afterwards."""
    ticks, found = 0, False
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            stat = ownership.read_stat(f"/proc/{pid}/task/{tid}/stat")
            if stat and JIT_THREAD.match(stat[0]):
                ticks += int(stat[1][11]) + int(stat[1][12])  # utime, stime (fields 14 and 15 of stat)
                found = True
    return ticks / os.sysconf("SC_CLK_TCK") if found else None


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
