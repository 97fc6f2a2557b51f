"""Units of the figures a skeptic checks: stop kinds and "saturates" only when seen, one headroom per
protocol stored once and read everywhere, the harness's share per point, warm-up stability, endpoint
rotation, the raw HTTP reader and the gRPC null server's answers. No locust, no servers (except the
gRPC null server's answers, decoded with the official messages)."""
from __future__ import annotations

import socket
import time
from dataclasses import replace

import numpy as np
import pytest

from deploy_compare.core.config import FULL, QUICK
from deploy_compare.core.results import load, save
from deploy_compare.loadtests.analysis import saturation_of, to_point, to_sweep
from deploy_compare.loadtests.headroom import apply_headrooms, harness_share, headroom_line, headroom_of
from deploy_compare.loadtests.plan import ProcessCpu, RawPoint
from deploy_compare.loadtests.rawhttp import ResponseReader, build_requests
from deploy_compare.loadtests.results import EndpointLoad, LoadTestResults
from deploy_compare.loadtests.rules import (
    StepFigure,
    StopKind,
    jit_quiet,
    last_step_reason,
    stable,
    stable_reason,
    stop_kind,
    sweep_stop_reason,
    warmed_reason,
)
from deploy_compare.loadtests.warmup import rotated, visits, warmup_job

SETTINGS = replace(QUICK.load, window=QUICK.load.window)


def _point(users, rps, *, p50=1.0, cpu=0.5, mode="closed", rate=None, seconds=2.0):
    n = int(rps * seconds)
    lat = list(np.linspace(0.5 * p50, 1.5 * p50, n))
    raw = RawPoint(mode=mode, users=users, rate=rate, window_seconds=seconds, latency_ms=lat,
                   uncorrected_ms=lat if mode == "open" else [], cpu=[ProcessCpu("local", 1, cpu * seconds, seconds)])
    return to_point(raw, SETTINGS)


def _endpoint(protocol, sweeps, open_points=(), model="mlp"):
    ep = EndpointLoad(endpoint={"stack": f"torchserve/{protocol}-x", "protocol": protocol, "model": model},
                      status="ok", failure=None, payload={}, generator_cpus=[1], workers=0, sweeps=sweeps,
                      open_points=list(open_points))
    ep.saturation = saturation_of(sweeps)
    ep.saturation_rps = ep.saturation.rps if ep.saturation else None
    return ep


def test_plateau_is_growth_over_the_best_step_before_not_over_the_previous_one():
    # the full profile's ONNX gRPC sweep: a dip at 16 users and its recovery at 32 is not growth
    scatter = [StepFigure(u, t, 20) for u, t in ((1, 1054), (2, 1476), (4, 1384), (8, 1495), (16, 1406), (32, 1519))]
    assert sweep_stop_reason(scatter[:3], 0.05, 200) is None  # 2 users added 40%
    reason = sweep_stop_reason(scatter[:4], 0.05, 200)  # stops at 8 users; the previous-step rule ran on to 64
    assert reason and stop_kind(reason) == StopKind.PLATEAU and "-6.2% and +1.3% over the best" in reason
    growing = [StepFigure(1, 100, 5), StepFigure(2, 80, 5), StepFigure(4, 120, 5), StepFigure(8, 130, 5)]
    assert sweep_stop_reason(growing, 0.05, 200) is None  # 4 users beat the best before it by 20%


def test_stop_kind_of_every_reason_the_rules_write():
    flat = [StepFigure(1, 100, 5), StepFigure(2, 101, 6), StepFigure(4, 102, 8)]
    assert stop_kind(sweep_stop_reason(flat, 0.05, 200)) == StopKind.PLATEAU
    assert stop_kind(sweep_stop_reason([StepFigure(1, 100, 300)], 0.05, 200)) == StopKind.SLO
    assert stop_kind(sweep_stop_reason([StepFigure(1, 0, None)], 0.05, 200)) == StopKind.NO_SUCCESS
    assert stop_kind(last_step_reason(16)) == StopKind.LAST_STEP
    assert stop_kind(stable_reason(3, 0.1)) == StopKind.STABLE
    assert stop_kind("", error="Traceback ...") == StopKind.ERROR
    with pytest.raises(ValueError, match="unknown sweep stop reason"):
        stop_kind("made up")


def test_a_sweep_that_does_not_saturate_is_labelled_as_a_lower_bound():
    pts = [_point(u, r) for u, r in ((1, 500), (2, 900), (4, 1300))]
    sweep = to_sweep(pts, last_step_reason(4), 200.0, 0)
    assert sweep.stop_kind == StopKind.LAST_STEP and not sweep.saturated
    sat = saturation_of([sweep])
    assert not sat.found and sat.label == "at least 1,300 req/s, not saturated by 4 users"
    plateau = to_sweep(pts, "throughput plateau: ...", 200.0, 0)
    found = saturation_of([plateau])
    assert found.found and found.label == "saturates at 1,300 req/s (4 users)"
    assert found.stop_kinds == ["plateau"]
    # one repeat without a plateau is enough to make the figure a lower bound
    assert not saturation_of([plateau, sweep]).found
    failed = to_sweep(pts[:1], "", 200.0, 0, error="ConnectionRefusedError: x\ntrace")
    assert failed.stop_kind == StopKind.ERROR and "failed part-way: ConnectionRefusedError" in failed.stop_reason


def test_headroom_is_the_measured_capacity_not_an_extrapolation():
    pts = [_point(1, 2000, cpu=0.4), _point(2, 4000, cpu=0.7), _point(4, 5000, cpu=0.95), _point(8, 5050, cpu=0.97)]
    h = headroom_of("rest", "mlp", pts, SETTINGS, [1], [0])
    assert h.capacity_rps == pytest.approx(5050, rel=1e-3) and h.capacity_users == 8 and h.saturated
    assert h.limited_by.startswith("generator CPU")
    half = headroom_of("rest", "mlp", pts[:2], SETTINGS, [1], [0])  # climbing at half a core: a lower bound
    assert not half.saturated and "lower bound" in half.limited_by
    assert half.capacity_rps == pytest.approx(4000, rel=1e-3)  # never 4000 / 0.7
    peak = headroom_of("grpc", "mlp", [_point(1, 700), _point(4, 1800), _point(16, 1700)], SETTINGS, [1], [0])
    assert peak.saturated and peak.capacity_users == 4 and "peaked at 4 users" in peak.limited_by


def test_one_headroom_ratio_stored_and_read_everywhere(tmp_path):
    null_rest = headroom_of("rest", "mlp", [_point(1, 6000, p50=0.1), _point(2, 9000, p50=0.15)], SETTINGS, [1], [0])
    null_grpc = headroom_of("grpc", "mlp", [_point(1, 1500, p50=0.5), _point(2, 2000, p50=0.9)], SETTINGS, [1], [0])
    rest = _endpoint("rest", [to_sweep([_point(1, 900), _point(2, 1500)], last_step_reason(2), 200, 0)])
    grpc = _endpoint("grpc", [to_sweep([_point(1, 700), _point(2, 1000)], last_step_reason(2), 200, 0)],
                     open_points=[_point(None, 500, p50=2.0, mode="open", rate=500.0)])
    res = LoadTestResults(profile="quick", label="quick", settings={}, locust_version="2.47.0",
                          headrooms=[null_rest, null_grpc], endpoints=[rest, grpc])
    apply_headrooms(res)
    assert null_rest.ratio == pytest.approx(9000 / 1500, rel=1e-3) and null_grpc.ratio == pytest.approx(2.0, rel=1e-3)
    # points of a protocol under 5x carry the warning; the others do not
    assert all(p.warnings == [] for s in rest.sweeps for p in s.points)
    assert all("2.0x" in p.warnings[0] for p in grpc.sweeps[0].points + grpc.open_points)
    assert "2.0x the fastest grpc endpoint" in headroom_line(null_grpc)
    # the harness's share: same users closed loop; open loop by requests in flight (500/s x 2 ms = 1 -> 1 user)
    assert rest.sweeps[0].points[1].harness.users == 2
    assert rest.sweeps[0].points[1].harness.p50_ms == pytest.approx(0.15, rel=1e-2)
    assert grpc.open_points[0].harness.users == 1 and "in flight" in grpc.open_points[0].harness.basis
    # stored once: the round trip keeps it; the report reads the stored ratio
    back = load(LoadTestResults, save(res, tmp_path / "loadtest.json"))
    assert back == res and back.headrooms[1].ratio == null_grpc.ratio
    from deploy_compare.app.report.model import ReportResults
    from deploy_compare.app.report.sources.loadtest import loadtest

    report = ReportResults(run_id="x", single_repeat=True, settings=None, environment=None)
    loadtest(tmp_path / "loadtest.json", report)
    # one headroom per protocol, each with the ratio as stored (never recomputed by the report)
    assert {h.protocol: h.ratio for h in report.headrooms} == {"rest": null_rest.ratio, "grpc": null_grpc.ratio}


def test_harness_share_is_none_without_a_matching_step():
    h = headroom_of("rest", "mlp", [_point(1, 6000)], SETTINGS, [1], [0])
    assert harness_share(_point(4, 100), h) is None


def test_warmup_stops_when_three_windows_agree_and_is_bounded():
    assert not stable([100, 200, 210])
    assert stable([100, 200, 210, 205])
    assert not stable([200, 210])  # too few windows
    from deploy_compare.loadtests.launch import LocustTarget
    from deploy_compare.loadtests.modes import LoadJob

    job = LoadJob(target=LocustTarget(locustfile=__file__, host="http://127.0.0.1:1", options=[]), settings=QUICK.load,
                  log_dir=".", name="x")
    warm = warmup_job(job)
    s = QUICK.load
    assert warm.users == [s.server_warmup_users] * int(s.server_warmup_seconds / s.server_warmup_window_seconds)
    assert warm.stable_windows == 3 and warm.stop_rule is False
    assert warm.settings.window.min_seconds == s.server_warmup_window_seconds


def test_warmup_is_stable_only_once_the_servers_jit_compilers_are_quiet():
    # a fresh TorchServe here: throughput held within 10% while its compilers still took 21-25% of the core
    rps, jit = [1051, 1067, 1111], [0.21, 0.23, 0.23]
    assert stable(rps) and not jit_quiet(jit, 3, 0.03)
    assert jit_quiet([0.23, 0.02, 0.0, 0.01], 3, 0.03)
    assert jit_quiet([None, None, None], 3, 0.03)  # no JIT in this server (TF Serving, the null server)
    assert not jit_quiet([0.0, 0.0], 3, 0.03)  # too few windows
    assert "JIT compilers at most 3% of a core" in stable_reason(3, 0.10, 0.03)
    assert stop_kind(stable_reason(3, 0.10, 0.03)) == StopKind.STABLE
    assert "JIT" not in stable_reason(3, 0.10)
    # one decision for the sweep's stop and the stored record
    assert warmed_reason(rps, jit, 3, 0.10, 0.03) is None
    assert warmed_reason(rps, [0.0, 0.01, 0.0], 3, 0.10, 0.03) == stable_reason(3, 0.10, 0.03)
    assert warmed_reason(rps, [None, None, None], 3, 0.10, 0.03) == stable_reason(3, 0.10)
    assert warmed_reason([100, 200, 210], [None] * 3, 3, 0.10, 0.03) is None


def test_jit_cpu_is_read_from_compiler_threads_by_name():
    import os
    import threading

    from deploy_compare.core.proc import jit_cpu_seconds

    assert jit_cpu_seconds([os.getpid()]) is None  # no thread of that name yet
    named, done = threading.Event(), threading.Event()

    def compiler() -> None:  # the kernel's name of a HotSpot C2 thread, truncated to 15 characters
        with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as fh:
            fh.write("C2 CompilerThread0")
        named.set()
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.3:
            pass
        done.wait(10)

    th = threading.Thread(target=compiler)
    th.start()
    try:
        assert named.wait(10)
        time.sleep(0.5)
        seconds = jit_cpu_seconds([os.getpid(), 999_999_999])  # a gone pid is skipped
        assert seconds is not None and 0.2 <= seconds <= 1.0
    finally:
        done.set()
        th.join()


def test_endpoint_order_rotates_across_repeats():
    eps = ["onnx", "torchscript", "savedmodel"]
    orders = [rotated(eps, r) for r in range(3)]
    assert [o[0] for o in orders] == eps  # each endpoint measured first once
    assert all(sorted(o) == sorted(eps) for o in orders)
    assert rotated([], 2) == []


def test_schedule_warms_every_endpoint_first_then_rotates_closed_sweeps():
    one = visits(2, 1)  # one repeat: every warm-up, then each endpoint once with every mode
    assert [(v.index, v.modes, v.warm) for v in one[:2]] == [(0, (), True), (1, (), True)]
    assert [(v.index, v.repeat, v.warm, len(v.modes)) for v in one[2:]] == [(0, -1, False, 2), (1, -1, False, 2)]
    three = visits(2, 3)
    assert [(v.index, v.repeat) for v in three if "closed" in v.modes] == [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2),
                                                                           (1, 2)]
    assert [(v.index, v.modes) for v in three if "open" in v.modes] == [(0, ("open",)), (1, ("open",))]
    assert not any(v.warm for v in three[2:])


def test_full_profile_sweeps_far_enough_to_see_torchserve_plateau():
    assert FULL.load.max_users >= 32


def test_raw_http_reader_content_length_chunked_and_close():
    a, b = socket.socketpair()
    try:
        b.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                  b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                  b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        reader = ResponseReader(a)
        assert reader.read() == (200, b"hello", True)
        assert reader.read() == (503, b"abcde", True)
        assert reader.read() == (200, b"ok", False)
    finally:
        a.close()
        b.close()
    (req,) = build_requests("127.0.0.1", 8080, "/predictions/mlp", [b'{"instances": [[1]]}'], {"X-A": "1"})
    assert req.startswith(b"POST /predictions/mlp HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert b"Content-Length: 20\r\n\r\n{" in req and b"X-A: 1\r\n" in req


@pytest.mark.parametrize("exclusive", [True, False], ids=["kernel-wait", "gevent-wait"])
def test_raw_http_connection_reads_both_ways_and_its_waits_are_bounded(exclusive):
    from deploy_compare.loadtests.rawhttp import Connection

    a, b = socket.socketpair()
    conn = Connection(a, timeout=0.2)
    try:
        conn.set_exclusive(exclusive)
        conn.sendall(b"ping")
        assert b.recv(4) == b"ping"
        b.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        assert conn.reader.read() == (200, b"hello", True)
        b.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe")  # the rest never comes
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            conn.reader.read()
        assert 0.2 <= time.monotonic() - t0 < 2.0
        assert conn.exclusive is False  # a slow answer was waited for through the loop after the kernel wait
    finally:
        conn.close()
        b.close()


def test_raw_http_sole_user_does_not_starve_the_loop_while_a_slow_answer_comes():
    import gevent

    from deploy_compare.loadtests.rawhttp import Connection

    a, b = socket.socketpair()
    conn = Connection(a, timeout=5.0)
    ticks = []
    try:
        conn.set_exclusive(True)
        ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.01)) for _ in range(100)])
        gevent.spawn_later(0.3, b.sendall, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        reader = gevent.spawn(conn.reader.read)
        assert reader.get(timeout=5) == (200, b"ok", True)
        ticker.kill()
        assert len(ticks) >= 15  # the controller's and locust's greenlets ran during the wait
    finally:
        conn.close()
        b.close()


def test_null_grpc_answers_decode_with_the_official_messages():
    from deploy_compare.loadtests.nullgrpc import tfserving_response, torchserve_response
    from deploy_compare.serving import grpc_stubs

    pb2, _ = grpc_stubs.load()
    msg = pb2.PredictionResponse.FromString(torchserve_response())
    assert msg.prediction.startswith(b'{"predictions": [[0.0')
    predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    t = predict_pb2.PredictResponse.FromString(tfserving_response()).outputs["outputs"]
    assert [d.size for d in t.tensor_shape.dim] == [1, 10]
    assert np.frombuffer(t.tensor_content, dtype="<f4").tolist()[-1] == 1.0


def test_a_point_of_several_sub_windows_reports_their_median_throughput():
    raw = RawPoint(mode="closed", users=2, rate=None, window_seconds=3.0, latency_ms=[1.0] * 1500,
                   cpu=[ProcessCpu("local", 1, 1.0, 3.0)], window_rps=[400.0, 700.0, 410.0])
    point = to_point(raw, SETTINGS)
    assert point.throughput_rps == 410.0 and point.window_rps == [400.0, 700.0, 410.0]  # not the mean, 500
    assert QUICK.load.windows_per_point == 3 and FULL.load.windows_per_point == 1


def test_sub_window_cpu_is_one_record_per_process():
    from deploy_compare.loadtests.modes.closed import merged_cpu

    cpu = [ProcessCpu("master", 1, 0.1, 1.0), ProcessCpu("worker", 2, 0.5, 1.0), ProcessCpu("master", 1, 0.3, 1.0),
           ProcessCpu("worker", 2, 0.7, 1.0)]
    merged = merged_cpu(cpu)
    assert [(c.role, c.cpu_seconds, c.wall_seconds) for c in merged] == [("master", 0.4, 2.0), ("worker", 1.2, 2.0)]


def test_settling_warnings_name_the_windows_left_out_and_a_point_that_never_agreed():
    from deploy_compare.loadtests.analysis import settling_warnings

    assert settling_warnings([1000.0, 1020.0, 990.0], [], 0, 0.10) == []
    (left_out,) = settling_warnings([1400.0, 1380.0, 1390.0], [590.0, 719.0], 1307, 0.10)
    assert "2 earlier sub-window(s) at 590, 719 req/s (1,307 requests)" in left_out
    (moved,) = settling_warnings([1000.0, 1300.0, 1100.0], [], 0, 0.10)
    assert "differ by 30%, more than 10%" in moved
