"""Nothing outlives the command that started it, however the command ends; children start with default
signal dispositions whatever their parent ignores (a background job of a non-interactive shell ignores
SIGINT). Fast: plain `sleep` groups stand in for servers; the TorchServe versions are in
test_reliability_run.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy_compare.core import ownership, proc
from tests import test_docker_launcher

engine = test_docker_launcher.engine  # fixture: a reachable engine and a tiny busybox image

CLI = [sys.executable, "-m", "deploy_compare.app.cli"]

OWNER = """
import sys, time
from pathlib import Path
from deploy_compare.core import ownership
from deploy_compare.core.proc import ManagedProcess
ownership.set_run(Path(sys.argv[1]))
(Path(sys.argv[1]) / "private").mkdir()
ownership.track_folder(Path(sys.argv[1]) / "private")
p = ManagedProcess(["bash", "-c", "sleep 300 & sleep 300"], Path(sys.argv[1]) / "group.log", name="sleepers").start()
print(p.pid, flush=True)
time.sleep(300)
"""


def _wait_gone(pgid: int, timeout: float) -> float:
    t0 = time.monotonic()
    while proc.group_members(pgid) and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    return time.monotonic() - t0


def _wait_members(pgid: int, count: int, timeout: float) -> list[int]:
    """The group's members once it has `count` (bash forks its sleepers a moment after it started)."""
    t0 = time.monotonic()
    while len(members := proc.group_members(pgid)) != count and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    return members


def test_watchdog_stops_the_group_and_removes_its_folders_when_its_owner_is_sigkilled(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             preexec_fn=proc.default_signals)
    try:
        pgid = int(owner.stdout.readline())
        record = ownership.runtime_dir() / f"{owner.pid}.json"
        assert len(_wait_members(pgid, 3, timeout=10)) == 3 and record.exists()
        assert json.loads(record.read_text())["run"] == str(tmp_path.resolve())
        owner.kill()
        owner.wait(timeout=10)
        took = _wait_gone(pgid, timeout=20)
    finally:
        if owner.poll() is None:
            owner.kill()
    assert proc.group_members(pgid) == [], "the owner's group outlived it"
    print(f"owner SIGKILLed -> its group gone in {took:.2f} s")
    assert took < 15
    deadline = time.monotonic() + 10  # the watchdog removes the record once the whole group is gone
    while record.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not record.exists()  # nothing left for the sweep either
    assert not (tmp_path / "private").exists()  # e.g. TorchServe's state folder with its key file


def test_stop_command_stops_what_a_dead_owner_left_and_names_its_run(tmp_path):
    # a record as a CLI killed together with its watchdog leaves it: the owner pid no longer runs
    group = subprocess.Popen(["bash", "-c", "sleep 300 & sleep 300"], start_new_session=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    record = ownership.OwnerRecord(pid=gone.pid, start_ticks=1, argv=["deploy-compare", "serve", str(tmp_path)],
                                   run=str(tmp_path.resolve()),
                                   groups=[ownership.Group(pgid=group.pid, name="torchserve", argv=["torchserve"],
                                                           log="x.log", started=time.time() - 5)],
                                   folders=[str(tmp_path / "dc-torchserve-x")])
    (tmp_path / "dc-torchserve-x").mkdir()
    path = ownership.runtime_dir() / f"{gone.pid}.json"
    from deploy_compare.core import results

    results.save(record, path)
    try:
        other = subprocess.run([*CLI, "stop", str(tmp_path / "elsewhere")], capture_output=True, text=True, timeout=60)
        assert other.returncode == 0 and "nothing left running" in other.stderr
        assert proc.group_members(group.pid)  # another run's leftovers are not touched
        out = subprocess.run([*CLI, "stop", str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "torchserve (process group" in out.stderr and str(tmp_path.resolve()) in out.stderr
        assert f"folder {tmp_path / 'dc-torchserve-x'} left by" in out.stderr
        assert not (tmp_path / "dc-torchserve-x").exists()
        assert _wait_gone(group.pid, 5) < 5 and not path.exists()
    finally:
        path.unlink(missing_ok=True)
        if proc.group_members(group.pid):
            os.killpg(group.pid, signal.SIGKILL)
        group.wait(timeout=10)


def test_children_get_default_signals_even_when_the_parent_ignores_sigint(tmp_path):
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        child = proc.ManagedProcess([sys.executable, "-c", probe], tmp_path / "c.log").start()
        child.popen.wait(timeout=60)
        child.stop()
    finally:
        signal.signal(signal.SIGINT, before)
    assert child.log_tail().strip() == "False"


def test_ignored_sigint_stays_ignored_off_a_terminal_and_sigterm_always_stops():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        proc.install_signal_handlers()
        assert (signal.getsignal(signal.SIGINT) is signal.SIG_IGN) == (not proc.foreground_of_terminal())
        assert callable(signal.getsignal(signal.SIGTERM))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        proc.install_signal_handlers()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
            raise AssertionError("SIGTERM did not interrupt")
        except proc.Terminated as exc:
            assert proc.exit_code(exc) == 143
        # once stopping, further signals are ignored so that the cleanup can finish
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        try:  # and no new process starts while stopping
            proc.ManagedProcess(["true"], Path("/dev/null")).start()
            raise AssertionError("a process started after the stop signal")
        except proc.Interrupted as exc:
            assert "stopping" in str(exc)
    finally:
        proc.reset_stop()  # a stale stop would turn the next in-process pipeline's failure into an interrupt
        assert proc.received_stop() is None
        for sig, handler in saved.items():
            signal.signal(sig, handler)


FINALIZER_STOP = """
import gc, os, signal, sys, time
from deploy_compare.core import proc

class Slow:
    def __del__(self):  # a library's finalizer (TensorFlow's AtomicFunction.__del__) running when the signal lands
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)

proc.install_signal_handlers()
try:
    Slow()  # finalized at once; the stop raises inside __del__, where Python cannot propagate it
    for _ in range(50):
        time.sleep(0.02)
    print("NOT STOPPED")
except proc.Terminated:
    print("STOPPED in ordinary code")
"""


def test_a_stop_signal_landing_in_a_finalizer_stops_the_command_without_a_traceback():
    done = subprocess.run([sys.executable, "-c", FINALIZER_STOP], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "STOPPED in ordinary code", (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


def test_mar_reused_when_it_matches_the_manifest_else_built_in_the_commands_own_store(spine_run, tmp_path):
    from deploy_compare.models.exporters.stage import load_manifest
    from deploy_compare.serving.catalog import served_models
    from deploy_compare.serving.torchserve.archive import prepare_store

    models = served_models(spine_run.path, load_manifest(spine_run), "torchserve", ["mlp"], ["torchscript"])
    published = tmp_path / "run-store"
    store, digests = prepare_store(models, published, threads=1)  # as the run's serve stage writes it
    assert store == published and (published / "mlp-torchscript.mar.json").exists()
    before = {p.name: p.stat().st_mtime_ns for p in published.iterdir()}

    again, same = prepare_store(models, tmp_path / "cmd", threads=1, published=published)
    assert again == published and same == digests and not (tmp_path / "cmd").exists()

    other, rebuilt = prepare_store(models, tmp_path / "cmd", threads=2, published=published)
    assert other == tmp_path / "cmd" and (other / "mlp-torchscript.mar").exists()
    assert {p.name: p.stat().st_mtime_ns for p in published.iterdir()} == before  # never rewritten

    mar = published / "mlp-torchscript.mar"
    mar.write_bytes(mar.read_bytes() + b"\0")  # changed after the run: not reused
    third, _ = prepare_store(models, tmp_path / "cmd3", threads=1, published=published)
    assert third == tmp_path / "cmd3" and Path(third / "mlp-torchscript.mar").exists()


CONTAINER_OWNER = """
import sys, time
from pathlib import Path
from deploy_compare.core import ownership
from deploy_compare.serving.launchers.docker import DockerLauncher
from tests.test_docker_launcher import _spec
ownership.set_run(Path(sys.argv[1]))
handle = DockerLauncher().launch(_spec(int(sys.argv[2])), Path(sys.argv[1]) / "c.log")
print(handle.container.id, flush=True)
time.sleep(300)
"""


@pytest.mark.docker
@pytest.mark.integration
def test_containers_of_a_sigkilled_owner_are_removed_by_the_next_command(engine, tmp_path, port):
    owner = subprocess.Popen([sys.executable, "-c", CONTAINER_OWNER, str(tmp_path), str(port)],
                             stdout=subprocess.PIPE, text=True, preexec_fn=proc.default_signals)
    container_id = ""
    try:
        container_id = owner.stdout.readline().strip()
        labels = engine.containers.get(container_id).labels
        assert labels["deploy-compare.owner-pid"] == str(owner.pid)
        assert labels["deploy-compare.run"] == str(tmp_path.resolve())
        owner.kill()
        owner.wait(timeout=10)
        out = subprocess.run([*CLI, "stop", str(tmp_path)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert f"left by pid {owner.pid}, run {tmp_path.resolve()}" in out.stderr.replace("\n", "")
        assert not engine.containers.list(all=True, filters={"id": container_id})
    finally:
        if owner.poll() is None:
            owner.kill()
        for c in engine.containers.list(all=True, filters={"id": container_id}) if container_id else []:
            c.remove(force=True)
