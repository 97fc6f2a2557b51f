"""The TensorFlow column through real TorchServe (native, 127.0.0.1, token on): the mlp SavedModel, TFLite
(fp32 and its int8-dynamic and fp16 variants) and ONNX from Keras, each in its own worker running its own
runtime. Served parity over REST and gRPC (gated for fp32, reported for the variants), a bad request's 4xx,
each worker's memory, and each worker holding only its own framework beyond torch."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from deploy_compare.models.parity import ParityTolerance
from deploy_compare.serving.session import served_parity
from tests.servers import running_torchserve

pytestmark = pytest.mark.integration

NAMES = {"mlp-savedmodel", "mlp-tflite", "mlp-tflite-int8-dynamic", "mlp-tflite-fp16", "mlp-onnx-tf"}
# what a worker's address space holds once its framework is loaded (the installed packages' own folders)
FRAMEWORKS = {"tensorflow": "/tensorflow/", "onnxruntime": "/onnxruntime/", "litert": "/ai_edge_litert/"}
EXPECTED = {"mlp-savedmodel": "tensorflow", "mlp-tflite": "litert", "mlp-onnx-tf": "onnxruntime"}


@pytest.fixture(scope="module")
def ts(spine_run):
    with running_torchserve(spine_run, twins=("mlp",), formats=("savedmodel", "tflite", "onnx-tf")) as server:
        yield server


def test_served_parity_of_the_tensorflow_column_over_rest_and_grpc(ts, spine_run):
    endpoints = ts.endpoints()
    assert {(ep.served_name, ep.protocol) for ep in endpoints} == {(n, p) for n in NAMES for p in ("rest", "grpc")}
    for ep in endpoints:
        row = served_parity(ep, spine_run, ParityTolerance())
        assert row.ok, (ep.served_name, ep.protocol, row.problem())
        if ep.variant == "fp32":
            assert row.figures.gated and row.figures.max_abs_err <= 1e-4 and row.figures.top1_agreement == 1.0
        else:  # quantized: figures reported, never gated
            assert not row.figures.gated and row.variant == ep.variant and row.figures.max_abs_err > 0


def test_a_bad_request_to_a_tensorflow_model_gets_its_4xx(ts):
    ep = next(e for e in ts.endpoints() if e.served_name == "mlp-savedmodel" and e.protocol == "rest")
    resp = requests.post(ep.target, data=json.dumps({"instances": [[1.0, 2.0]]}), headers=ep.headers, timeout=30)
    assert resp.status_code == 400 and "each instance must have shape" in resp.text
    good = json.dumps({"instances": [[0.0] * 64]})
    refused = requests.post(ep.target, data=good, timeout=30)  # no token (TorchServe answers 400 for it)
    assert refused.status_code in (400, 401, 403) and "Token" in refused.text
    assert requests.post(ep.target, data=good, headers=ep.headers, timeout=30).status_code == 200
    assert ts.healthy()


def test_each_worker_holds_its_own_framework_only_and_its_memory_is_recorded(ts):
    workers = ts.worker_memory()
    assert set(workers) == NAMES
    assert all(w.rss_bytes > 50 * 2**20 and w.peak_rss_bytes >= w.rss_bytes for w in workers.values())
    for name, framework in EXPECTED.items():
        maps = Path(f"/proc/{workers[name].pid}/maps").read_text(encoding="utf-8")
        held = {fw for fw, folder in FRAMEWORKS.items() if folder in maps}
        assert held == {framework}, f"{name}: worker maps {sorted(held)}, expected only {framework}"
