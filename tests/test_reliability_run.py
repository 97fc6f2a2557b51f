"""Issue 7 at the level of a whole `deploy-compare run`: interrupted runs leave nothing behind and keep
what they gathered; a rerun never overwrites silently; a failing run explains itself in one paragraph."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from core import results
from core.results import StageTiming

CLI = [sys.executable, "-m", "deploy_compare.cli"]


def _run(args, timeout=120):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_rerun_into_existing_run_folder_is_refused(tmp_path):
    run = tmp_path / "r1"
    run.mkdir()
    (run / "config.json").write_text("{}")
    out = _run(["run", "--run-id", "r1", "--results-dir", str(tmp_path), "--stages", "report"])
    assert out.returncode == 2
    assert "already holds results" in out.stderr and "--force" in out.stderr
    assert (run / "config.json").read_text() == "{}"  # untouched


def test_failing_run_explains_itself_and_points_to_the_log(tmp_path):
    # parity on a folder that was never trained/exported: the stage fails for a clear reason
    out = _run(["run", "--run-id", "broken", "--results-dir", str(tmp_path), "--stages", "parity"], timeout=300)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr  # one paragraph, the traceback goes to the log
    assert "deploy-compare run failed" in out.stderr and "manifest" in out.stderr
    log = tmp_path / "broken" / "logs" / "error.log"
    assert str(log) in out.stderr and "Traceback" in log.read_text()
    [timing] = results.load(list[StageTiming], tmp_path / "broken" / "stages.json")
    assert timing.stage == "parity" and not timing.ok


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _is_torchserve(p: psutil.Process) -> bool:
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return False
    return any(mark in cmd for mark in ("model-server.jar", "org.pytorch.serve", "model_service_worker"))


def _alive(procs: list[psutil.Process]) -> list[str]:
    left = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
    return left


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_serve_stage_stops_everything_and_keeps_results(spine_run, tmp_path, sig):
    run = tmp_path / "run"
    shutil.copytree(spine_run.path, run)
    proc = subprocess.Popen([*CLI, "run", "--run-id", "run", "--results-dir", str(tmp_path), "--force",
                             "--stages", "serve"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 120
        # wait until the server (TorchServe's JVM) is running under the CLI, then interrupt mid-stage
        while time.monotonic() < deadline:
            for child in _descendants(proc.pid):
                seen.setdefault(child.pid, child)
            try:
                if any(_is_torchserve(c) for c in seen.values()):
                    break
            except psutil.NoSuchProcess:
                pass
            assert proc.poll() is None, f"run ended before the server started:\n{proc.stdout.read()}"
            time.sleep(0.2)
        else:
            pytest.fail("TorchServe never started under the run")
        time.sleep(1.0)
        for child in _descendants(proc.pid):
            seen.setdefault(child.pid, child)
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 130, output
    assert "interrupted" in output
    deadline = time.monotonic() + 10
    while _alive(list(seen.values())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive(list(seen.values())) == [], "processes left behind by the interrupted run"
    timings = results.load(list[StageTiming], run / "stages.json")
    serve = [t for t in timings if t.stage == "serve"]
    assert serve and not serve[0].ok  # the interruption is recorded
    assert (run / "serving.json").exists()  # what the stage gathered so far is saved
    assert (run / "manifest.json").exists() and (run / "parity.json").exists()  # earlier results untouched
