"""Load-test units: stop rule, validity, schedule, payloads, gRPC wire encoding, result round trip, CLI guard.
Nothing here imports locust (it monkey-patches the interpreter with gevent on import)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from deploy_compare.core.config import QUICK
from deploy_compare.core.results import load, save
from deploy_compare.loadtests.analysis import to_point, to_sweep
from deploy_compare.loadtests.modes.closed import doubling_steps
from deploy_compare.loadtests.payload import build_payload
from deploy_compare.loadtests.plan import ProcessCpu, RawPoint, poisson_offsets
from deploy_compare.loadtests.requests import wire_requests
from deploy_compare.loadtests.results import EndpointLoad, LoadTestResults
from deploy_compare.loadtests.rules import StepFigure, last_step_reason, sweep_stop_reason
from deploy_compare.loadtests.senders import error_kind


def test_locust_is_not_imported_by_the_orchestrating_side():
    import deploy_compare.loadtests.cli
    import deploy_compare.loadtests.stage  # noqa: F401

    assert "locust" not in sys.modules and "gevent.monkey" not in sys.modules


def test_sweep_stop_rule_plateau_slo_and_no_success():
    s = [StepFigure(1, 100, 5), StepFigure(2, 190, 6), StepFigure(4, 195, 8)]
    assert sweep_stop_reason(s, 0.05, 200) is None  # one flat step is not a plateau
    s.append(StepFigure(8, 197, 9))
    assert sweep_stop_reason(s, 0.05, 200).startswith("throughput plateau")
    assert "exceeded the SLO" in sweep_stop_reason([StepFigure(1, 100, 250)], 0.05, 200)
    assert "no successful request" in sweep_stop_reason([StepFigure(1, 0, None)], 0.05, 200)
    assert doubling_steps(64) == [1, 2, 4, 8, 16, 32, 64] and doubling_steps(12) == [1, 2, 4, 8, 12]


def _raw(lat, **kw):
    base = dict(mode="closed", users=4, rate=None, window_seconds=2.0, latency_ms=lat,
                cpu=[ProcessCpu("local", 1, 0.5, 2.0)])
    return RawPoint(**{**base, **kw})


def test_point_validity_generator_cpu_lateness_errors():
    settings = QUICK.load
    ok = to_point(_raw([1.0] * 300), settings)
    assert ok.valid and ok.throughput_rps == 150 and ok.latency_ms.backed == ["p50", "p90", "p95"]
    busy = to_point(_raw([1.0] * 300, cpu=[ProcessCpu("local", 1, 1.9, 2.0)]), settings)
    assert not busy.valid and "generator saturated" in busy.invalid_reasons[0]
    late = to_point(_raw([1.0] * 300, mode="open", users=None, rate=150.0, lateness_ms=[0.1] * 290 + [5.0] * 10),
                    settings)
    assert not late.valid and "late" in late.invalid_reasons[0] and late.late_fraction == pytest.approx(10 / 300)
    errs = to_point(_raw([1.0] * 90, errors={"http_500": 10}), settings)
    assert errs.error_flag and not errs.valid and errs.error_rate == pytest.approx(0.1)
    dead = to_point(_raw([], errors={"ConnectionRefusedError": 50}), settings)
    assert not dead.valid and dead.latency_ms is None


def test_saturation_is_the_best_valid_point_within_slo():
    settings = QUICK.load
    pts = [to_point(_raw([1.0] * n, users=u), settings) for u, n in ((1, 200), (2, 380), (4, 400))]
    pts.append(to_point(_raw([500.0] * 600, users=8), settings))  # above the 200 ms SLO
    sweep = to_sweep(pts, "p99 500.0 ms exceeded the SLO of 200 ms at 8 users", settings.slo_p99_ms, 0)
    assert sweep.saturation_users == 4 and sweep.saturation_rps == 200 and sweep.saturated


def test_poisson_schedule_is_seeded_and_has_the_rate():
    a, b = poisson_offsets(500, 10, 7), poisson_offsets(500, 10, 7)
    assert a == b and a != poisson_offsets(500, 10, 8)
    assert len(a) == pytest.approx(5000, rel=0.05) and all(x < y for x, y in zip(a, a[1:]))


def test_payload_layout_and_bodies(tmp_path):
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    np.save(tmp_path / "x.npy", x)
    p = build_payload(tmp_path / "x.npy", layout="NCHW", source_layout="NHWC", batch_size=2)
    assert p.x.shape == (2, 3, 4, 4) and p.batches()[0].shape == (2, 3, 4, 4)
    assert p.rest_bodies()[0].startswith(b'{"instances":[[[[0.0,3.0')  # as the serving clients encode it
    with pytest.raises(ValueError, match="run folder"):
        build_payload(tmp_path)


def test_torchserve_grpc_request_decodes_with_torchserve_stubs():
    from deploy_compare.serving import grpc_stubs

    pb2, _ = grpc_stubs.load()
    msg = pb2.PredictionsRequest.FromString(wire_requests(_ep("torchserve"), [np.ones((1, 1), np.float32)])[0])
    assert msg.model_name == "mlp" and msg.input["data"] == b'{"instances":[[1.0]]}'


def _ep(server: str):
    from deploy_compare.serving.endpoint import Endpoint, TensorSignature

    return Endpoint(stack=f"{server}/x", server=server, protocol="grpc", model="mlp", served_name="mlp",
                    target="127.0.0.1:1", layout="NF", signature=TensorSignature("inputs", "out"))


def test_tfserving_grpc_request_decodes_with_tf_serving_protos():
    predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    msg = predict_pb2.PredictRequest.FromString(wire_requests(_ep("tfserving"), [arr])[0])
    t = msg.inputs["inputs"]
    assert msg.model_spec.name == "mlp" and msg.model_spec.signature_name == "serving_default"
    assert t.dtype == 1 and [d.size for d in t.tensor_shape.dim] == [2, 3]
    assert np.frombuffer(t.tensor_content, dtype="<f4").tolist() == arr.ravel().tolist()


def test_error_kinds():
    class R:
        status_code = 503

    assert error_kind(RuntimeError("x"), R()) == "http_503"
    assert error_kind(ConnectionRefusedError()) == "ConnectionRefusedError"


def test_results_round_trip(tmp_path):
    settings = QUICK.load
    pts = [to_point(_raw([1.0, 2.0] * 150, users=u), settings) for u in (1, 2)]
    ep = EndpointLoad(endpoint={"stack": "null"}, status="ok", failure=None, payload={}, generator_cpus=[1],
                      workers=0, sweeps=[to_sweep(pts, last_step_reason(2), 200, 0)], saturation_rps=150.0)
    res = LoadTestResults(profile="quick", label="quick", settings={}, locust_version="2.47.0",
                          endpoints=[ep])
    assert load(LoadTestResults, save(res, tmp_path / "loadtest.json")) == res


def test_cli_refuses_non_loopback_target(tmp_path):
    # in a child process: the CLI's exit path stops every process this interpreter started (session fixtures too)
    import subprocess

    np.save(tmp_path / "x.npy", np.zeros((4, 8), dtype=np.float32))
    out = subprocess.run([sys.executable, "-m", "deploy_compare.app.cli", "loadtest", "--url", "http://192.0.2.1:8080/",
                          "--payload", str(tmp_path / "x.npy"), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "not loopback" in out.stderr


def test_cli_server_warmup_is_seconds_and_not_negative():
    import argparse

    from deploy_compare.loadtests import cli

    parser = argparse.ArgumentParser()
    cli.configure(parser)
    base = ["--null", "--payload", "x.npy"]
    assert parser.parse_args(base).server_warmup is None  # the profile's
    assert parser.parse_args([*base, "--server-warmup", "0"]).server_warmup == 0.0
    for bad in ("-1", "nan", "soon"):
        with pytest.raises(SystemExit):
            parser.parse_args([*base, "--server-warmup", bad])


def test_repeats_give_median_and_95_interval():
    from deploy_compare.loadtests.analysis import repeat_summaries

    settings = QUICK.load
    pts = [to_point(_raw([1.0 + r] * (300 + 10 * r), users=2), settings, repeat=r) for r in range(3)]
    (summary,) = repeat_summaries(pts)
    tp = summary.metrics["throughput_rps"]
    assert summary.load == "2 users" and tp["repeats"] == 3 and tp["median"] == 155.0
    assert tp["ci_lo"] < tp["median"] < tp["ci_hi"]
    assert repeat_summaries(pts[:1]) == []  # one repeat (quick profile): no interval claimed


def test_endpoint_labels_parse_back_and_one_factor_pairs_are_found():
    from deploy_compare.loadtests.results import endpoint_label, label_parts, one_factor_apart

    label = endpoint_label("torchserve/onnx-torch", "grpc", "mlp", "docker")
    assert label_parts(label) == ("torchserve/onnx-torch", "grpc", "mlp", "docker")
    assert label_parts(endpoint_label("null/0", "rest", "mlp")) == ("null/0", "rest", "mlp", "")
    assert label_parts("not a label") is None
    a = endpoint_label("torchserve/savedmodel", "rest", "mlp", "native")
    assert one_factor_apart(a, endpoint_label("torchserve/savedmodel", "grpc", "mlp", "native"))  # protocol
    assert one_factor_apart(a, endpoint_label("torchserve/tflite", "rest", "mlp", "native"))  # format
    assert one_factor_apart(a, endpoint_label("torchserve/savedmodel", "rest", "mlp", "docker"))  # launcher
    assert not one_factor_apart(a, endpoint_label("torchserve/tflite", "grpc", "mlp", "native"))
    assert not one_factor_apart(a, endpoint_label("torchserve/tflite", "rest", "cnn", "native"))
