"""The serve and load stages end to end on a copy of spine_run (mlp only), with the load test replaced by
a recorder that drives a few requests inside `around(endpoint)`: TorchServe started natively (once for
both stages), served parity over REST and gRPC, cold start recorded, TF Serving listed as not run with
its enabling command, metrics windows stored, no token in serving.json, everything stopped; the load
stage alone opens (and stops) a session of its own."""
from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from deploy_compare.core import results
from deploy_compare.core.config import QUICK, RunConfig
from deploy_compare.core.context import RunContext
from deploy_compare.core.proc import group_members
from deploy_compare.core.results import StageTiming
from deploy_compare.core.rundir import RunDir
from deploy_compare.serving.catalog import ArtifactMismatch
from deploy_compare.serving.results import ServingResults


def _ctx(run_dir: RunDir, tmp_path, stages: tuple[str, ...] = ()) -> RunContext:
    # the PyTorch formats only: the TensorFlow ones are served in tests/test_serving_tf_formats.py
    profile = replace(QUICK, serve=replace(QUICK.serve, twins=("mlp",), formats=("torchscript", "onnx-torch")))
    config = RunConfig(profile=profile, run_id=run_dir.path.name, results_root=run_dir.path.parent, force=True,
                       stages=stages)
    return RunContext(config=config, run_dir=run_dir)


@pytest.fixture
def run_copy(spine_run, tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(spine_run.path, dest, ignore=shutil.ignore_patterns("torchserve*", "serving.json"))
    return RunDir(dest)


@pytest.mark.integration
def test_serve_then_load_share_one_session_then_load_alone_opens_its_own(run_copy, tmp_path, monkeypatch):
    import deploy_compare.loadtests.stage
    from deploy_compare.app.pipeline import run_pipeline
    from deploy_compare.serving.clients import make_client
    from deploy_compare.serving.session import heldout

    seen = {}

    def fake_load(ctx, endpoints, around=None):
        for ep in endpoints:
            x, _, _ = heldout(ctx.run_dir, ep.model, ep.layout)
            with around(ep), make_client(ep) as client:
                for _ in range(3):
                    client.predict(x[:1])
            seen[(ep.served_name, ep.protocol)] = list(ep.server_pids)

    monkeypatch.setattr(deploy_compare.loadtests.stage, "run", fake_load)
    run_pipeline(_ctx(run_copy, tmp_path, ("serve", "load")))

    out = results.load(ServingResults, run_copy.serving)
    assert set(seen) == {(n, p) for n in ("mlp-torchscript", "mlp-onnx-torch") for p in ("rest", "grpc")}
    [ts] = out.servers
    assert ts.server == "torchserve" and ts.launcher == "native" and not ts.error
    assert all(p.ok for p in ts.parity) and len(ts.parity) == 4
    cold = ts.cold_start
    assert cold.start_to_ready_s > 0 and set(cold.model_load_s) == {"mlp-torchscript", "mlp-onnx-torch"}
    assert set(cold.first_request_s) == {f"{n}/{p}" for n, p in seen}
    assert len(ts.sequential) == 4 and all(m.stats["p50"] > 0 for m in ts.sequential)
    assert len(ts.metrics) == 4 and all(w.delta["ts_inference_requests_total"] == 3 for w in ts.metrics)
    assert [m.phase for m in ts.memory] == ["ready", "after load"]
    assert all(m.processes >= 3 and m.peak_rss_bytes >= m.rss_bytes > 50 * 2**20 for m in ts.memory)  # JVM + 2 workers
    assert ts.settings["workers"] == 1 and "batch_size" in ts.settings and ts.settings["launcher"] == "native"
    not_run = {n.what: n for n in out.not_run}
    assert set(not_run) == {"tfserving", "serve/cnn"}  # the profile serves mlp only: cnn is listed, not dropped
    assert "docker pull tensorflow/serving" in not_run["tfserving"].enable_command
    assert "serves only twins ('mlp',)" in not_run["serve/cnn"].reason
    assert all(set(m.workers) == {"mlp-torchscript", "mlp-onnx-torch"} for m in ts.memory)  # each worker's RSS
    assert out.loadtest == "ran"
    text = run_copy.serving.read_text()
    assert "Bearer" not in text and '"key"' not in text
    pids = next(iter(seen.values()))
    assert not [p for p in pids if group_members(p)]  # every server process is gone
    assert {ep["launcher"] for ep in ts.endpoints} == {"native"} and out.opened_by == "serve"
    timings = {t.stage: t for t in results.load(list[StageTiming], run_copy.stages)}
    assert timings["serve"].ok and timings["load"].ok  # timed each on its own
    print(f"serve stage without load: {out.seconds:.1f} s; cold start {cold}")

    # the load stage alone: a session of its own (started, parity re-checked, stopped), the probe kept
    seen.clear()
    run_pipeline(_ctx(run_copy, tmp_path, ("load",)))
    again = results.load(ServingResults, run_copy.serving)
    [ts2] = again.servers
    assert again.opened_by == "load" and again.loadtest == "ran" and all(p.ok for p in ts2.parity)
    assert len(seen) == 4 and next(iter(seen.values())) != pids  # new server processes
    assert [m.phase for m in ts2.memory] == ["ready", "after load"] and len(ts2.metrics) == 4
    assert [m.name for m in ts2.sequential] == [m.name for m in ts.sequential]  # the serve stage's probe
    assert not [p for p in next(iter(seen.values())) if group_members(p)]


def test_tampered_artifact_is_refused_before_anything_starts(run_copy, tmp_path):
    from deploy_compare.models.exporters.stage import load_manifest
    from deploy_compare.serving.stage import run_stage

    rec = next(r for r in load_manifest(run_copy).artifacts if r.twin == "mlp" and r.format == "onnx")
    with open(run_copy.path / rec.path, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ArtifactMismatch, match=rf"{rec.key} \(onnx\).*does not match the manifest"):
        run_stage(_ctx(run_copy, tmp_path))
    assert not (run_copy.artifacts / "torchserve").exists()  # nothing archived, nothing started
    np.testing.assert_equal(results.load(ServingResults, run_copy.serving).servers, [])


@pytest.mark.integration
def test_serve_cli_serves_until_ctrl_c_then_nothing_is_left(run_copy):
    """`deploy-compare serve RUN_DIR`: endpoints and the key file path printed (never the token);
    SIGINT (Ctrl-C) stops every process it started."""
    import contextlib
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    from deploy_compare.core.proc import default_signals

    log = run_copy.path / "serve-cli.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "deploy_compare.app.cli", "serve", str(run_copy.path),
                                 "--twins", "mlp", "--launcher", "native"], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "COLUMNS": "200"}, start_new_session=True,
                                preexec_fn=default_signals)  # SIGINT may be ignored here (nohup, CI)
    started: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while "serving until Ctrl-C" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            started = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)] or started
            time.sleep(0.3)
        text = log.read_text()
        assert "serving until Ctrl-C" in text, text
        assert "parity ok" in text and "PARITY FAILED" not in text and "key_file.json" in text
        assert "CPU idle: default, not held" in text, text  # open-ended: idle cores spin only with --cpu-idle poll
        key_file = next(w for w in text.split() if w.endswith("key_file.json"))
        tokens = [v["key"] for v in json.loads(open(key_file).read()).values()]
        started = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert len(started) >= 3, "expected torchserve, its JVM and workers under the CLI"
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:  # whatever failed above: Ctrl-C the CLI, then make sure its server groups are gone
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        leftover = [p for p in started if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        for pid in leftover:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
    assert not leftover, f"processes left after Ctrl-C: {leftover}"
    text = log.read_text()
    assert "servers stopped" in text and not any(t in text for t in tokens)
    assert not os.path.exists(key_file)


def test_pipeline_closes_a_kept_session_when_a_later_stage_fails(tmp_path, monkeypatch):
    """What the serve stage keeps open for the load stage is closed on every exit path, once."""
    import contextlib

    from deploy_compare.app import pipeline

    events = []

    @contextlib.contextmanager
    def session():
        events.append("open")
        yield "servers"
        events.append("closed")

    def serve(ctx):
        assert ctx.upcoming == ("load",)
        ctx.keep("servers", session())

    def load(ctx):
        assert ctx.resources["servers"] == "servers"
        raise RuntimeError("locust failed")

    fakes = {"deploy_compare.serving.stage:run_stage": serve, "deploy_compare.loadtests.stage:run_stage": load}
    monkeypatch.setattr(pipeline, "resolve", lambda target: fakes[target])
    run_dir = RunDir(tmp_path / "r").create()
    with pytest.raises(RuntimeError, match="locust failed"):
        pipeline.run_pipeline(_ctx(run_dir, tmp_path, ("serve", "load")))
    assert events == ["open", "closed"]
    timings = {t.stage: t.ok for t in results.load(list[StageTiming], run_dir.stages)}
    assert timings == {"serve": True, "load": False}
