"""Reliability of whole commands: SIGINT / SIGTERM during any stage stop what was started, keep what was
finished and exit 130 / 143 with one paragraph; a SIGKILLed `serve` leaves no server; a finished run
folder is never changed by later commands; a rerun never overwrites silently; a failing run explains
itself in one paragraph.

Every CLI here starts with default signal dispositions (`proc.default_signals`): under `nohup ... &` or a
CI runner the test process ignores SIGINT, and a child would inherit that."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from deploy_compare.core import ownership, proc, results
from deploy_compare.core.results import StageTiming

CLI = [sys.executable, "-m", "deploy_compare.app.cli"]


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


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def _is_torchserve(p: psutil.Process) -> bool:
    return any(mark in _cmdline(p) for mark in ("model-server.jar", "org.pytorch.serve", "model_service_worker"))


def _alive(procs) -> list[str]:
    left = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {_cmdline(p)[:120]}")
        except psutil.NoSuchProcess:
            continue
    return left


class Cli:
    """A `deploy-compare` child with default signal dispositions, its output in a file, and every process
    it ever had under it remembered (they leave its tree once re-parented)."""

    def __init__(self, args: list[str], out: Path) -> None:
        self.out = out
        with open(out, "wb") as fh:
            self.popen = subprocess.Popen([*CLI, *args], stdout=fh, stderr=subprocess.STDOUT,
                                          env={**os.environ, "COLUMNS": "200"}, preexec_fn=proc.default_signals)
        self.seen: dict[int, psutil.Process] = {}
        self.started = time.time()

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def look(self) -> list[psutil.Process]:
        for child in _descendants(self.popen.pid):
            self.seen.setdefault(child.pid, child)
        return list(self.seen.values())

    def wait_for(self, started, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not started(self):
            self.look()
            assert self.popen.poll() is None, f"the command ended before the point to signal:\n{self.text()}"
            assert time.monotonic() < deadline, f"not seen within {timeout:.0f} s:\n{self.text()}"
            time.sleep(0.05)
        self.look()

    def finish(self, timeout: float = 120.0) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        finally:
            if self.popen.poll() is None:  # on a timeout: its watchdog then stops what it started
                self.popen.kill()
                self.popen.wait(timeout=30)


def _saved_since_start(name: str):
    """The stage saved `name` since the command started: it saves after each twin, so the signal lands
    while the next twin is being worked on."""
    def saved(cli: Cli, run: Path) -> bool:
        path = run / name
        return path.exists() and path.stat().st_mtime > cli.started
    return saved


# When a stage's work is under way: it saved its first twin's results (train, export), or the processes
# it starts are running. Checked only after the stage's own heading, so the signal lands inside that stage.
STAGE_STARTED = {
    "train": _saved_since_start("models.json"),
    "export": _saved_since_start("manifest.json"),
    "parity": lambda cli, run: bool(cli.look()),
    "inspect": lambda cli, run: True,
    "floor": lambda cli, run: bool(cli.look()),
    "serve": lambda cli, run: any(_is_torchserve(p) for p in cli.look()),
    "load": lambda cli, run: any("locust" in _cmdline(p) for p in cli.look()),
    "report": lambda cli, run: True,
}
OWN_RESULT = {"train": "models.json", "export": "manifest.json", "parity": "parity.json"}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


# Every stage with one signal, the two alternating; the stages that run servers and locust (serve, load)
# with both. SIGINT and SIGTERM take the same path through the pipeline's handler, so the full 8 x 2 matrix
# (about 140 s of the suite's 10 minutes) tested that path twice per stage without covering more of it.
SIGNAL_CASES = [(stage, sig) for i, stage in enumerate(STAGE_STARTED)
                for sig in ((signal.SIGINT, signal.SIGTERM) if stage in ("serve", "load")
                            else ((signal.SIGINT, signal.SIGTERM)[i % 2],))]


@pytest.mark.integration
@pytest.mark.parametrize(("stage", "sig"), SIGNAL_CASES, ids=[f"{st}-{sg.name}" for st, sg in SIGNAL_CASES])
def test_signal_during_a_stage_stops_everything_and_keeps_results(spine_run, tmp_path, stage, sig):
    run = tmp_path / "run"
    shutil.copytree(spine_run.path, run)
    kept = {name: _digest(run / name) for name in ("models.json", "manifest.json", "parity.json")
            if name != OWN_RESULT.get(stage)}
    cli = Cli(["run", "--run-id", "run", "--results-dir", str(tmp_path), "--force", "--stages", stage],
              tmp_path / "out")
    try:
        cli.wait_for(lambda c: f"stage: {stage}" in c.text() and STAGE_STARTED[stage](c, run))
        t0 = time.monotonic()
        cli.popen.send_signal(sig)
        code = cli.finish(timeout=120)
        took = time.monotonic() - t0
    finally:
        cli.finish(timeout=1)
    output = cli.text()
    assert code == 128 + sig, output
    message = output[output.index(f"stopped by {sig.name}"):]
    assert "Traceback" not in output and "\n\n" not in message.strip(), output  # one paragraph
    print(f"{stage} {sig.name}: exited {code} {took:.1f} s after the signal")
    deadline = time.monotonic() + 15
    while _alive(cli.seen.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(cli.seen.values()) == [], "processes left behind by the interrupted run"
    assert not (ownership.runtime_dir() / f"{cli.popen.pid}.json").exists()  # nothing left for a sweep
    [timing] = [t for t in results.load(list[StageTiming], run / "stages.json") if t.stage == stage]
    assert not timing.ok and sig.name in timing.error  # the interruption is recorded
    assert {name: _digest(run / name) for name in kept} == kept  # what other stages finished is kept
    if stage in OWN_RESULT:  # and what this stage finished before the signal (its first twin)
        assert json.loads((run / OWN_RESULT[stage]).read_text()), f"{OWN_RESULT[stage]} lost its saved part"


@pytest.mark.integration
def test_finished_run_is_read_only_and_a_sigkilled_serve_leaves_no_server(spine_run, tmp_path):
    """`serve` (SIGKILLed mid-serve), `report`, `inspect` and `loadtest --payload RUN` on a finished run
    change none of its files; the killed serve's TorchServe is gone within seconds."""
    from deploy_compare.core.config import QUICK
    from deploy_compare.models.exporters.stage import load_manifest
    from deploy_compare.serving.catalog import served_models
    from deploy_compare.serving.torchserve.archive import prepare_store

    run = tmp_path / "run"
    shutil.copytree(spine_run.path, run)
    from deploy_compare.core.rundir import RunDir

    # finished as a whole run leaves it: the serve stage's archives (with their records) and a report
    prepare_store(served_models(run, load_manifest(RunDir(run)), "torchserve"), run / "artifacts" / "torchserve",
                  QUICK.serve.threads)
    assert subprocess.run([*CLI, "report", str(run), "--quiet"], capture_output=True, timeout=180).returncode == 0
    before = _hashes(run)

    serve = Cli(["serve", str(run), "--twins", "mlp", "--launcher", "native"], tmp_path / "serve.out")
    try:
        serve.wait_for(lambda c: "serving until Ctrl-C" in c.text())
        servers = [p for p in serve.look() if _is_torchserve(p)]
        assert servers, "no TorchServe process under `serve`"
        serve.popen.kill()
        t0 = time.monotonic()
        serve.popen.wait(timeout=30)
        while _alive(serve.seen.values()) and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        gone_after = time.monotonic() - t0
    finally:
        serve.finish(timeout=1)
    assert _alive(serve.seen.values()) == [], "server processes outlived the SIGKILLed serve"
    print(f"serve SIGKILLed -> no server process after {gone_after:.2f} s ({len(serve.seen)} processes)")
    assert gone_after < 15
    [out] = run.glob("serve-*")
    assert not (out / "artifacts").exists(), "the run's archives match its manifest: they are reused"
    assert (out / "logs" / "torchserve.log").exists()

    report = subprocess.run([*CLI, "report", str(run), "--quiet"], capture_output=True, text=True, timeout=180)
    assert report.returncode == 0, report.stderr
    [again] = run.glob("report-*")
    assert (again / "report.html").exists() and str(again) in report.stderr.replace("\n", "")

    artifact = next(run / r.path for r in load_manifest(RunDir(run)).artifacts if r.format == "torchscript")
    assert subprocess.run([*CLI, "inspect", str(artifact)], capture_output=True, timeout=120).returncode == 0
    load = subprocess.run([*CLI, "loadtest", "--null", "--payload", str(run), "--twin", "mlp", "--users", "1",
                           "--no-stop-rule", "--server-warmup", "0", "--out", str(tmp_path / "lt")],
                          capture_output=True, text=True,
                          timeout=300, preexec_fn=proc.default_signals)
    assert load.returncode == 0, load.stderr[-3000:]

    after = _hashes(run)
    assert {k: after.get(k) for k in before} == before, "a later command changed the finished run"
    stop = subprocess.run([*CLI, "stop", str(run)], capture_output=True, text=True, timeout=60)
    assert "nothing left running" in stop.stderr, stop.stderr  # the watchdog already stopped it all
