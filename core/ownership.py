"""Who started which process group and container, so that nothing outlives the command that started it.

Every process that starts a `deploy_compare.core.proc.ManagedProcess` (the CLI, a test session) owns one small JSON
record in a per-user runtime folder (`$XDG_RUNTIME_DIR/deploy-compare/`, else `/tmp/deploy-compare-<uid>/`,
mode 0700): its pid and start time, its command line, the run folder it works on, and the process groups
and containers it started and has not stopped yet. A copy is kept beside the command's own logs.

Two mechanisms read it:
- the watchdog: the first tracked start also starts `python -m deploy_compare.core.ownership watch <record>`, a tiny
  process in its own session holding the read end of a pipe whose write end only the owner holds. However
  the owner ends (SIGKILL included) the kernel closes the pipe, and the watchdog stops every group still
  in the record (SIGTERM to the group, then SIGKILL) within seconds, then removes its private folders. It
  never imports the Docker SDK: containers are found by their labels by the sweep in
  `deploy_compare.serving.launchers.docker`.
- the sweep (`sweep_orphans()`): the records of dead owners (e.g. the watchdog was killed too) are stopped
  and removed (their private folders too), each with a line saying what was stopped and from which run.
  Commands that start processes call it first, and `deploy-compare stop [RUN]` calls it on demand.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy_compare.core import results

WATCHDOG_STOP_TIMEOUT_S = 10.0  # SIGTERM -> SIGKILL grace the watchdog and the sweep give a group


@dataclass
class Group:
    pgid: int
    name: str
    argv: list[str]
    log: str
    started: float  # wall clock (time.time) just before the spawn: members started earlier are not ours


@dataclass
class Container:
    id: str
    name: str


@dataclass
class OwnerRecord:
    pid: int
    start_ticks: int  # /proc/<pid>/stat start time: tells a live owner from a reused pid
    argv: list[str]
    run: str = ""  # run folder the owner works on ("" until the command names it)
    groups: list[Group] = field(default_factory=list)
    containers: list[Container] = field(default_factory=list)
    # private folders of the processes above (e.g. TorchServe's state, with its key file): removed once
    # they are stopped
    folders: list[str] = field(default_factory=list)


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(base) / "deploy-compare" if base else Path(f"/tmp/deploy-compare-{os.getuid()}")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid != os.getuid():
        raise PermissionError(f"{folder} belongs to another user: refusing to keep process records there; "
                              "set XDG_RUNTIME_DIR to a folder of your own")
    return folder


def read_stat(path: str | Path) -> tuple[str, list[str]] | None:
    """A /proc `stat` file (a process's or a thread's): its name (`comm`, which may hold spaces and
    parentheses) and the fields after it, so field N of proc(5) is `fields[N - 3]`; None if it is gone."""
    try:
        stat = Path(path).read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    head, _, tail = stat.rpartition(")")
    return head.partition("(")[2], tail.split()


def start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), None if there is no such process."""
    stat = read_stat(f"/proc/{pid}/stat")
    return int(stat[1][19]) if stat else None


def owner_alive(record: OwnerRecord) -> bool:
    return start_ticks(record.pid) == record.start_ticks


# --- process groups ---------------------------------------------------------------------------------

def group_members(pgid: int, since: float = 0.0) -> list[int]:
    """Live (non-zombie) processes of a process group started at or after `since` (wall clock), and of the
    session the group leads: every tracked group is started in a session of its own (`start_new_session`),
    and a daemon may move its children to groups of their own inside that session (Ray's raylet gives each
    worker its own group), which a signal to the group would miss. Zombies re-parented to a PID 1 that does
    not reap them would otherwise make a stopped group look alive."""
    import psutil

    members = []
    for p in psutil.process_iter(["pid", "status", "create_time"]):
        try:
            pid = p.info["pid"]
            if ((os.getpgid(pid) == pgid or os.getsid(pid) == pgid) and p.info["status"] != psutil.STATUS_ZOMBIE
                    and p.info["create_time"] >= since - 1.0):  # create_time has a tick's resolution
                members.append(pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def signal_group(pgid: int, sig: int) -> None:
    """`sig` to the process group and to the members of its session that left the group (see group_members)."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    for pid in _session_strays(pgid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _session_strays(sid: int) -> list[int]:
    import psutil

    strays = []
    for pid in psutil.pids():
        try:
            if os.getsid(pid) == sid and os.getpgid(pid) != sid:
                strays.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return strays


def terminate_group(group: Group, timeout: float = WATCHDOG_STOP_TIMEOUT_S) -> bool:
    """SIGTERM the group, wait up to `timeout`, then SIGKILL it. True if anything was running."""
    if not group_members(group.pgid, group.started):
        return False
    signal_group(group.pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and group_members(group.pgid, group.started):
        time.sleep(0.05)
    if group_members(group.pgid, group.started):
        signal_group(group.pgid, signal.SIGKILL)
    return True


# --- this process's record ----------------------------------------------------------------------------

class _Owner:
    """The record of the current process (reset in a forked child, which owns nothing yet)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()  # one lock for the life of the process: callers hold it across a reset
        self.pid = -1
        self.record: OwnerRecord | None = None
        self.copy: Path | None = None
        self.watchdog: subprocess.Popen | None = None
        self.pipe_w: int | None = None

    def current(self) -> OwnerRecord:
        """This process's record (call with `lock` held); a forked child starts with an empty one."""
        if self.pid != os.getpid():
            self.pid = os.getpid()
            self.record = OwnerRecord(pid=self.pid, start_ticks=start_ticks(self.pid) or 0, argv=list(sys.argv))
            self.copy, self.watchdog, self.pipe_w = None, None, None
        assert self.record is not None
        return self.record

    @property
    def path(self) -> Path:
        return runtime_dir() / f"{os.getpid()}.json"

    def save(self) -> None:
        record = self.current()
        if record.groups or record.containers or record.folders:
            self._ensure_watchdog()
            results.save(record, self.path)
        else:
            self.path.unlink(missing_ok=True)
        if self.copy is not None:
            results.save(record, self.copy)

    def _ensure_watchdog(self) -> None:
        if self.watchdog is not None and self.watchdog.poll() is None:
            return
        read_end, write_end = os.pipe()  # both non-inheritable: only the watchdog gets the read end
        try:
            self.watchdog = subprocess.Popen(
                [sys.executable, "-m", "deploy_compare.core.ownership", "watch", str(self.path)], stdin=read_end,
                stdout=subprocess.DEVNULL, stderr=open(runtime_dir() / "watchdog.log", "ab"),
                start_new_session=True, close_fds=True, cwd="/", preexec_fn=_watchdog_signals,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
        finally:
            os.close(read_end)
        if self.pipe_w is not None:
            os.close(self.pipe_w)
        self.pipe_w = write_end


_OWNER = _Owner()


def _watchdog_signals() -> None:
    # the watchdog must outlive its owner's signals: only the pipe's end (or SIGKILL) ends it
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def release(timeout: float = 5.0) -> None:
    """End the watchdog now (called when the command ends): it stops whatever the record still lists
    (nothing, after a clean stop) and exits, so no helper process outlives the command either."""
    with _OWNER.lock:
        _OWNER.current()
        watchdog, pipe_w = _OWNER.watchdog, _OWNER.pipe_w
        _OWNER.watchdog, _OWNER.pipe_w = None, None
    if pipe_w is not None:
        os.close(pipe_w)
    if watchdog is not None:
        try:
            watchdog.wait(timeout=timeout + WATCHDOG_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:  # still stopping a group: it finishes on its own, detached
            pass


def set_run(run: Path, copy: Path | None = None) -> None:
    """Name the run folder this process works on (shown by the sweep), and where to keep a copy of the record."""
    with _OWNER.lock:
        _OWNER.current().run = str(Path(run).resolve())
        _OWNER.copy = Path(copy) if copy else None
        if _OWNER.copy is not None:
            _OWNER.copy.parent.mkdir(parents=True, exist_ok=True)
        _OWNER.save()


def current_run() -> str:
    with _OWNER.lock:
        return _OWNER.current().run


def track_group(pgid: int, name: str, argv: list[str], log: Path, started: float) -> None:
    with _OWNER.lock:
        _OWNER.current().groups.append(Group(pgid=pgid, name=name, argv=list(argv), log=str(log), started=started))
        _OWNER.save()


def untrack_group(pgid: int) -> None:
    with _OWNER.lock:
        record = _OWNER.current()
        record.groups = [g for g in record.groups if g.pgid != pgid]
        _OWNER.save()


def track_container(container_id: str, name: str) -> None:
    with _OWNER.lock:
        _OWNER.current().containers.append(Container(id=container_id, name=name))
        _OWNER.save()


def untrack_container(container_id: str) -> None:
    with _OWNER.lock:
        record = _OWNER.current()
        record.containers = [c for c in record.containers if c.id != container_id]
        _OWNER.save()


def track_folder(folder: Path) -> None:
    with _OWNER.lock:
        _OWNER.current().folders.append(str(folder))
        _OWNER.save()


def untrack_folder(folder: Path) -> None:
    with _OWNER.lock:
        record = _OWNER.current()
        record.folders = [f for f in record.folders if f != str(folder)]
        _OWNER.save()


def remove_folders(record: OwnerRecord) -> list[str]:
    """Remove the record's private folders (after its groups are stopped); returns the ones removed."""
    import shutil

    removed = [f for f in record.folders if Path(f).exists()]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    record.folders = []
    return removed


# --- finding what dead owners left ---------------------------------------------------------------------

def records() -> list[tuple[Path, OwnerRecord]]:
    out = []
    for path in sorted(runtime_dir().glob("*.json")):
        try:
            out.append((path, results.load(OwnerRecord, path)))
        except FileNotFoundError:  # its owner finished between the listing and the read
            continue
        except ValueError as exc:  # JSON or schema: written by something else
            raise RuntimeError(f"process record {path} is unreadable ({type(exc).__name__}); check that no "
                               "deploy-compare is running, then delete it") from exc
    return out


def describe(record: OwnerRecord) -> str:
    command = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(record.argv))[:120]
    return f"pid {record.pid} (`{command}`" + (f", run {record.run})" if record.run else ")")


def sweep_orphans(run: Path | None = None) -> list[str]:
    """Stop the process groups of every record whose owner is dead (only those of `run`, if given) and
    remove those records. Returns one line per stopped group: what, and from which owner and run."""
    wanted = str(Path(run).resolve()) if run else None
    stopped = []
    for path, record in records():
        if owner_alive(record) or (wanted and record.run != wanted):
            continue
        for group in record.groups:
            if terminate_group(group):
                stopped.append(f"{group.name} (process group {group.pgid}, log {group.log}) left by "
                               f"{describe(record)}, which ended without stopping it")
        stopped += [f"folder {f} left by {describe(record)}, removed" for f in remove_folders(record)]
        path.unlink(missing_ok=True)
    return stopped


def live_owners(run: Path | None = None) -> list[OwnerRecord]:
    """Records of owners still running (of `run`, if given), other than this process."""
    wanted = str(Path(run).resolve()) if run else None
    return [r for _, r in records() if owner_alive(r) and r.pid != os.getpid() and (not wanted or r.run == wanted)]


def _log(what: str) -> None:
    """One line of the watchdog's log (its stderr): UTC time, then what it did."""
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} watchdog: {what}", file=sys.stderr, flush=True)


def _watch(record_path: Path) -> int:
    """Block until the owner's pipe closes (the owner ended, however), then stop what its record still lists."""
    while sys.stdin.buffer.read(65536):
        pass
    try:
        record = results.load(OwnerRecord, record_path)
    except FileNotFoundError:  # the owner stopped everything and removed its record
        return 0
    for group in record.groups:
        if terminate_group(group):
            _log(f"stopped {group.name} (process group {group.pgid}) left by {describe(record)}")
    for folder in remove_folders(record):
        _log(f"removed {folder} left by {describe(record)}")
    if record.containers:  # removed by the next command's container sweep (by label)
        record.groups = []
        results.save(record, record_path)
    else:
        record_path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["watch"] or len(sys.argv) != 3:
        sys.exit("usage: python -m deploy_compare.core.ownership watch RECORD_PATH")
    sys.exit(_watch(Path(sys.argv[2])))
