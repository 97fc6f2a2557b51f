"""Real TorchServe, natively on free 127.0.0.1 ports, serving spine_run's mlp as TorchScript and ONNX:
parity over REST and gRPC, token enforcement, bad input answered with 4xx while the server stays
healthy, loopback-only listeners, no token in logs, metrics around a window, a killed worker
recovers, and a clean shutdown. One server for the whole module (tests run in file order)."""
from __future__ import annotations

import json
import os
import signal
import time

import grpc
import numpy as np
import psutil
import pytest
import requests

from deploy_compare.core.proc import group_members
from deploy_compare.models.parity import ParityTolerance
from deploy_compare.serving.clients import PredictError, make_client
from deploy_compare.serving.metrics import make_around
from deploy_compare.serving.session import served_parity
from tests.servers import running_torchserve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ts(spine_run):
    with running_torchserve(spine_run, twins=("mlp",), formats=("torchscript", "onnx-torch")) as server:
        yield server


def _rest(ts, name="mlp-torchscript"):
    return next(e for e in ts.endpoints() if e.protocol == "rest" and e.served_name == name)


def _healthy(ts) -> None:
    assert ts.healthy(), f"TorchServe unhealthy; log:\n{ts.logs()[-2000:]}"


def test_served_parity_over_rest_and_grpc_for_torchscript_and_onnx(ts, spine_run):
    rows = [served_parity(ep, spine_run, ParityTolerance()) for ep in ts.endpoints()]
    assert {(r.served_name, r.protocol) for r in rows} == {
        (n, p) for n in ("mlp-torchscript", "mlp-onnx-torch") for p in ("rest", "grpc")}
    for r in rows:
        assert r.ok, (r.served_name, r.protocol, r.problem())
        assert r.figures.max_abs_err <= 1e-4 and r.figures.top1_agreement == 1.0


def test_token_is_required_on_every_api(ts):
    ep = _rest(ts)
    x = {"instances": [[0.0] * 64]}
    assert requests.post(ep.target, json=x, timeout=10).status_code in (400, 401, 403)
    assert requests.post(ep.target, json=x, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code in (
        400, 401, 403)
    assert requests.post(ep.target, json=x, headers=ep.headers, timeout=10).status_code == 200
    mgmt = ts.url("management", "/models")
    refused = requests.get(mgmt, timeout=10)
    assert refused.status_code in (400, 401, 403) and "Token" in refused.text
    assert requests.get(mgmt, headers=ts.auth("inference"), timeout=10).status_code in (400, 401, 403)
    assert requests.get(mgmt, headers=ts.auth("management"), timeout=10).status_code == 200
    # model-control API off: registering a model is refused even with the management token
    reg = requests.post(ts.url("management", "/models?url=mlp-onnx-torch.mar&model_name=x"),
                        headers=ts.auth("management"), timeout=10)
    assert reg.status_code >= 400
    grpc_ep = next(e for e in ts.endpoints() if e.protocol == "grpc")
    grpc_ep.headers = {}
    with make_client(grpc_ep) as client, pytest.raises(PredictError) as info:
        client.predict(np.zeros((1, 64), np.float32))
    assert info.value.status == grpc.StatusCode.PERMISSION_DENIED.name


@pytest.mark.parametrize("body, content_type, code, words", [
    (json.dumps({"instances": [[0.0] * 63]}), "application/json", 400, "shape"),           # wrong shape
    (json.dumps({"instances": [["a"] * 64]}), "application/json", 400, "numbers"),         # wrong dtype
    (json.dumps({"instances": [[None] * 64]}), "application/json", 400, "numbers"),        # nulls
    ("this is not json", "application/json", 400, "not JSON"),                              # non-JSON
    ("", "application/json", 400, "empty request body (received Content-Type application/json, 0 bytes)"),
    (json.dumps({"inputs": [[0.0] * 64]}), "application/json", 400, "instances"),          # wrong key
    (json.dumps({"instances": []}), "application/json", 400, "non-empty"),
    # curl --data @body.json: TorchServe decodes the form before the handler; the answer says what came, what to send
    (json.dumps({"instances": [[0.0] * 64]}), "application/x-www-form-urlencoded", 400,
     "received Content-Type application/x-www-form-urlencoded, 337 bytes"),
    ("a=1&b=2", "application/x-www-form-urlencoded", 400, "(form fields ['a', 'b']); expected Content-Type: "
                                                          "application/json"),
])
def test_bad_input_gets_a_clear_4xx_and_the_server_stays_healthy(ts, body, content_type, code, words):
    ep = _rest(ts)
    resp = requests.post(ep.target, data=body.encode(), headers={**ep.headers, "Content-Type": content_type},
                         timeout=10)
    assert resp.status_code == code, resp.text
    assert words in resp.json()["error"]
    _healthy(ts)


def test_oversized_body_and_unknown_model_are_refused(ts):
    ep = _rest(ts)
    too_big = b'{"instances": [' + b"0.0," * (5 * 1024 * 1024) + b"0.0]}"  # ~20 MiB > max_request_size
    resp = requests.post(ep.target, data=too_big, headers={**ep.headers, "Content-Type": "application/json"},
                         timeout=30)
    assert resp.status_code == 413
    unknown = requests.post(ep.target.replace("mlp-torchscript", "no-such-model"), json={"instances": [[0.0] * 64]},
                            headers=ep.headers, timeout=10)
    assert unknown.status_code == 404 and "no-such-model" in unknown.text
    grpc_ep = next(e for e in ts.endpoints() if e.protocol == "grpc")
    grpc_ep.served_name = "no-such-model"
    with make_client(grpc_ep) as client, pytest.raises(PredictError) as info:
        client.predict(np.zeros((1, 64), np.float32))
    # TorchServe 0.12 answers an unknown model over gRPC with INTERNAL, naming the model
    assert info.value.status in (grpc.StatusCode.NOT_FOUND.name, grpc.StatusCode.INTERNAL.name)
    assert "no-such-model" in info.value.message, info.value.message
    _healthy(ts)
    with make_client(_rest(ts)) as client:  # still answering
        assert client.predict(np.zeros((2, 64), np.float32)).shape == (2, 10)


def test_every_listener_is_on_loopback_and_pinned(ts):
    listeners = []
    for pid in ts.pids():
        try:
            listeners += [c.laddr for c in psutil.Process(pid).net_connections(kind="inet") if c.status == "LISTEN"]
        except psutil.NoSuchProcess:
            continue
    assert listeners, "no listening socket found in the server's process group"
    assert {addr.ip.removeprefix("::ffff:") for addr in listeners} == {"127.0.0.1"}, listeners
    assert {addr.port for addr in listeners} == set(ts.ports.values())
    if len(os.sched_getaffinity(0)) >= 2:
        assert all(psutil.Process(p).cpu_affinity() == [0] for p in ts.pids() if psutil.pid_exists(p))


def test_metrics_are_scraped_around_a_window(ts):
    windows = []
    ep = _rest(ts, "mlp-onnx-torch")
    with make_around(windows)(ep), make_client(ep) as client:
        for _ in range(5):
            client.predict(np.zeros((1, 64), np.float32))
    [w] = windows
    assert w.error is None and w.delta["ts_inference_requests_total"] == 5
    assert 0 < w.derived["mean_inference_ms"] < 1000
    loads = ts.model_load_seconds()
    assert set(loads) == {"mlp-torchscript", "mlp-onnx-torch"} and all(v > 0 for v in loads.values())


def test_killed_worker_recovers_and_errors_are_counted(ts):
    ep = _rest(ts)
    [worker] = ts.worker_pids("mlp-torchscript")
    os.kill(worker, signal.SIGKILL)
    errors, ok, t0 = 0, 0, time.monotonic()
    deadline = t0 + 60
    x = np.zeros((1, 64), np.float32)
    with make_client(ep, timeout=10) as client:
        while time.monotonic() < deadline and ok < 3:
            try:
                client.predict(x)
                ok += 1
            except (PredictError, requests.RequestException):
                errors += 1
                time.sleep(0.2)
    assert ok == 3, f"no recovery within 60 s ({errors} errors)"
    print(f"worker {worker} killed: {errors} failed requests, recovered in {time.monotonic() - t0:.1f} s")
    assert worker not in ts.worker_pids("mlp-torchscript")  # a new worker process answers
    assert ts.worker_status("mlp-torchscript") == "READY"


def test_a_request_is_logged_once_in_the_access_log_and_nowhere_else(ts):
    """TorchServe's default config writes about a dozen lines per request (serving/torchserve/config.py);
    the serving config keeps one: the access log's."""
    logs = [ts.log_path, *(ts.log_path.parent / ts.log_path.stem).glob("*.log")]

    def lines() -> dict[str, int]:
        return {p.name: p.read_bytes().count(b"\n") if p.exists() else 0 for p in logs}

    ep = _rest(ts)
    with make_client(ep) as client:
        client.predict(np.zeros((1, 64), np.float32))  # any first-request lines are written before we count
        time.sleep(0.5)
        before = lines()
        for _ in range(200):
            client.predict(np.zeros((1, 64), np.float32))
    time.sleep(0.5)
    grown = {name: n - before[name] for name, n in lines().items()}
    assert grown.pop("access_log.log") == 200, grown
    assert sum(grown.values()) < 10, grown  # no per-request line in ts_log, model_log or the console log


def test_no_token_in_logs_then_clean_shutdown(ts, spine_run):
    tokens = [ts.token("inference"), ts.token("management")]
    pids = ts.pids()
    pgid = ts.handle.proc.pid
    ts.stop()
    texts = [p.read_text(errors="replace") for p in spine_run.logs.rglob("*") if p.is_file()]
    assert texts and not any(t in text for t in tokens for text in texts)
    assert group_members(pgid) == []
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not ts.state_dir.exists()  # the key file went with the private state folder
