"""Real Ray Serve, natively (public listeners allowed: Ray Serve 2.60 binds its gRPC servers to [::]), serving
spine_run's mlp as ONNX from both exporters: parity over REST and gRPC, bad input answered with 4xx (REST) and
INVALID_ARGUMENT / NOT_FOUND (gRPC) while the server stays healthy, the socket list (Ray's core listeners on
loopback, only Serve's gRPC servers on [::]), and a SIGKILLed `deploy-compare serve` leaving no Ray process.
One server for the module (Ray's start is the cost: ~8 s idle, minutes on a loaded machine)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests

from deploy_compare.core.config import ServeSettings
from deploy_compare.models.parity import ParityTolerance
from deploy_compare.serving.base import NotAvailable
from deploy_compare.serving.catalog import SERVED_FORMATS, served_name
from deploy_compare.serving.clients import PredictError, make_client
from deploy_compare.serving.launchers.native import NativeLauncher
from deploy_compare.serving.rayserve.server import RayServe
from deploy_compare.serving.session import served_parity
from deploy_compare.serving.stacks import import_servers, plan_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
NAMES = ("mlp-onnx-torch", "mlp-onnx-tf")


def test_onnx_is_named_by_its_exporter_and_native_is_refused_without_public_bind():
    assert {row.exporter for row in SERVED_FORMATS["rayserve"]} == {"savedmodel", "tflite", "torchscript",
                                                                    "onnx-torch", "onnx-tf"}
    assert served_name("mlp", "onnx-torch") == "mlp-onnx-torch" and served_name("mlp", "onnx-tf") == "mlp-onnx-tf"
    with pytest.raises(NotAvailable) as info:
        NativeLauncher().check(RayServe, ServeSettings())
    assert "[::]" in info.value.reason and "--allow-public-bind" in info.value.enable_command


@pytest.fixture(scope="module")
def ray(spine_run):
    import_servers()
    settings = ServeSettings(launcher="native", twins=("mlp",), allow_public_bind=True)
    planned = plan_server("rayserve", spine_run, settings, ["onnx-torch", "onnx-tf"])
    assert planned.server is not None, planned.not_run
    server = planned.server
    try:
        server.start()
        server.wait_ready(settings.ready_timeout_s)
        yield server
    finally:
        server.stop()


def test_served_parity_over_rest_and_grpc(ray, spine_run):
    rows = [served_parity(ep, spine_run, ParityTolerance()) for ep in ray.endpoints()]
    assert {(r.served_name, r.protocol) for r in rows} == {(n, p) for n in NAMES for p in ("rest", "grpc")}
    for r in rows:
        assert r.ok, (r.served_name, r.protocol, r.problem())
    assert set(ray.model_load_seconds()) == set(NAMES)


@pytest.mark.parametrize("body, code, words", [
    (json.dumps({"instances": [[0.0] * 63]}), 400, "shape"),
    (json.dumps({"instances": [["a"] * 64]}), 400, "numbers"),
    ("this is not json", 400, "not JSON"),
    ("", 400, "empty"),
    (json.dumps({"inputs": [[0.0] * 64]}), 400, "instances"),
])
def test_bad_rest_input_gets_a_4xx_with_a_json_reason(ray, body, code, words):
    ep = next(e for e in ray.endpoints() if e.protocol == "rest")
    resp = requests.post(ep.target, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == code and words in resp.json()["error"], resp.text
    unknown = requests.post(ray.url("/v1/models/nope:predict"), data="{}", timeout=30)
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    assert ray.healthy()


def test_bad_grpc_input_is_invalid_argument_and_unknown_model_not_found(ray):
    ep = next(e for e in ray.endpoints() if e.protocol == "grpc")
    with make_client(ep) as client:
        with pytest.raises(PredictError) as info:
            client.predict(np.zeros((1, 63), np.float32))
        assert info.value.status == "INVALID_ARGUMENT" and "shape" in info.value.message
        with make_client(replace(ep, served_name="nope")) as other, pytest.raises(PredictError) as info:
            other.predict(np.zeros((1, 64), np.float32))
        assert info.value.status == "NOT_FOUND"
        assert client.predict(np.zeros((2, 64), np.float32)).shape == (2, 10)


def test_socket_list_ray_core_on_loopback_only_serve_grpc_public(ray):
    """Every listener of the server's processes (the session Ray's workers stay in): 127.0.0.1 except the ones
    Ray Serve 2.60 hard-codes to [::] (its gRPC proxy and each Serve actor's inter-deployment server)."""
    public, loopback = [], []
    for pid in ray.pids():
        try:
            proc = psutil.Process(pid)
            conns = [c for c in proc.net_connections(kind="inet") if c.status == "LISTEN"]
            name = proc.name()
        except psutil.NoSuchProcess:
            continue
        for c in conns:
            (loopback if c.laddr.ip in ("127.0.0.1", "::ffff:127.0.0.1") else public).append((name, c.laddr))
    assert any(port == ray.ports["http"] for _, (_, port) in loopback), loopback
    assert any(port == ray.ports["gcs"] for _, (_, port) in loopback), loopback
    for name, (ip, port) in public:
        assert ip in ("::", "0.0.0.0"), (name, ip, port)
        assert port == ray.ports["grpc"] or name.startswith(("ray::ServeRepli", "ray::ProxyActor")), (name, port)
    ports = sorted(p for _, (_, p) in public)
    print(f"loopback listeners: {len(loopback)}; public (Ray Serve's gRPC servers): {ports}")


def _ray_processes(session_leader: int) -> list[int]:
    out = []
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if os.getsid(p.info["pid"]) == session_leader and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p.info["pid"])
        except (ProcessLookupError, PermissionError):
            continue
    return out


def test_kill_9_of_the_serve_cli_leaves_no_ray_process_within_20_s(spine_run, tmp_path):
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        cli = subprocess.Popen([sys.executable, "-m", "deploy_compare.app.cli", "serve", str(spine_run.path),
                                "--servers", "rayserve", "--launcher", "native", "--allow-public-bind",
                                "--twins", "mlp"], stdout=out, stderr=subprocess.STDOUT, env=env)
    leader = None
    try:
        deadline = time.monotonic() + 420
        while leader is None:
            assert cli.poll() is None, f"the CLI exited early:\n{log.read_text(errors='replace')[-3000:]}"
            assert time.monotonic() < deadline, f"Ray not started after 420 s:\n{log.read_text()[-3000:]}"
            kids = [c for c in psutil.Process(cli.pid).children() if "rayserve.main" in " ".join(c.cmdline())]
            members = _ray_processes(kids[0].pid) if kids else []
            if any("ServeReplica" in psutil.Process(p).name() for p in members if psutil.pid_exists(p)):
                leader = kids[0].pid
            time.sleep(1.0)
        cli.send_signal(signal.SIGKILL)
        cli.wait(timeout=10)
        t0 = time.monotonic()
        while _ray_processes(leader) and time.monotonic() - t0 < 20:
            time.sleep(0.2)
        left = _ray_processes(leader)
        print(f"kill -9 of the CLI: Ray's processes gone after {time.monotonic() - t0:.1f} s")
        assert not left, f"Ray processes left 20 s after kill -9 of the CLI: {left}"
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(timeout=30)
