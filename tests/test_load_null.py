"""Load generation against the null endpoint on 127.0.0.1: the sweep's stop rule, coordinated-omission
correction under a paused server, distributed mode, error counting, a server killed mid-load, and the
generator benchmark (headroom)."""
from __future__ import annotations

import contextlib
import csv
import os
import signal
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from deploy_compare.core.config import QUICK
from deploy_compare.core.stats import WindowPolicy
from deploy_compare.loadtests.headroom import measure_headroom
from deploy_compare.loadtests.launch import free_port
from deploy_compare.loadtests.nullserver import start_null_server
from deploy_compare.loadtests.stage import measure_endpoint
from deploy_compare.serving.endpoint import Endpoint

pytestmark = pytest.mark.integration

SHORT = WindowPolicy(warmup_seconds=0.2, warmup_samples=10, min_seconds=0.6, min_samples=50, max_seconds=8.0)
SETTINGS = replace(QUICK.load, window=SHORT, twins=(), drain_seconds=5.0, server_warmup_seconds=0.0, settle_windows=0,
                   one_user_seconds=0.0)


@pytest.fixture
def payload(tmp_path) -> str:
    """A digits-like batch saved as .npy (the pipeline uses the run's held-out batch)."""
    from sklearn.datasets import load_digits

    x = load_digits().data[:64].astype(np.float32) / 16.0
    np.save(tmp_path / "x.npy", x)
    return str(tmp_path / "x.npy")


@pytest.fixture
def null_server(tmp_path):
    port = free_port()
    cpus = {sorted(os.sched_getaffinity(0))[0]}
    server = start_null_server(port, tmp_path / "null.log", cpus=cpus)
    try:
        yield server, port, cpus
    finally:
        server.stop(timeout=5)


def _wait_for_traffic(pid: int, timeout: float = 60.0) -> None:
    """Block until the load generator has connected to the server process (the load has started)."""
    import psutil

    proc = psutil.Process(pid)
    deadline = time.monotonic() + timeout
    while not any(c.status == psutil.CONN_ESTABLISHED for c in proc.net_connections(kind="tcp")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no load reached the server (pid {pid}) within {timeout} s")
        time.sleep(0.02)


def _measure_with_a_pause(server, measure, after: float, pause: float):
    """`measure()` in a thread; once its load reaches the server, wait `after` s, then stop the server
    (SIGSTOP) for `pause` s; returns what `measure` returned."""
    done: dict = {}
    worker = threading.Thread(target=lambda: done.setdefault("r", measure()))
    worker.start()
    try:
        _wait_for_traffic(server.pid)
        time.sleep(after)
        os.killpg(server.pid, signal.SIGSTOP)
        time.sleep(pause)
    finally:
        os.killpg(server.pid, signal.SIGCONT)
    worker.join(timeout=60)
    return done["r"]


def _endpoint(port: int, server, cpus, path: str = "/v1/models/null:predict") -> Endpoint:
    return Endpoint(stack="null/none", server="null", protocol="rest", model="null", served_name="null",
                    target=f"http://127.0.0.1:{port}{path}", layout="NF", server_pids=[server.pid],
                    server_cpus=sorted(cpus))


def test_sweep_stops_by_its_rule(null_server, payload, tmp_path):
    server, port, cpus = null_server
    ep = _endpoint(port, server, cpus)
    plateau = measure_endpoint(ep, replace(SETTINGS, plateau_gain=10.0, max_users=64, server_warmup_seconds=0.5),
                               payload=payload, twin=None, log_dir=tmp_path, modes=("closed",))
    warm = plateau.server_warmup  # warmed at load until stable (or its bound), excluded
    assert warm.users == 4 and warm.excluded and 1 <= len(warm.windows_rps) <= 3 and warm.seconds > 0
    assert warm.stable == (len(warm.windows_rps) == 3 and max(warm.windows_rps) <= 1.1 * min(warm.windows_rps))
    (sweep,) = plateau.sweeps
    assert [p.users for p in sweep.points] == [1, 2, 4], sweep.stop_reason  # 2 steps each adding < 1000%
    assert sweep.stop_reason.startswith("throughput plateau") and sweep.stop_kind == "plateau" and sweep.saturated
    assert plateau.saturation.found and plateau.saturation.label.startswith("saturates at")
    slo = measure_endpoint(ep, replace(SETTINGS, slo_p99_ms=1e-6, max_users=64), payload=payload, twin=None,
                           log_dir=tmp_path, modes=("closed",))
    assert [p.users for p in slo.sweeps[0].points] == [1] and "exceeded the SLO" in slo.sweeps[0].stop_reason
    point = sweep.points[0]
    assert point.count >= SHORT.min_samples and point.duration_s >= SHORT.min_seconds
    assert len(point.samples_ms) == point.count and point.warmup_count >= SHORT.warmup_samples
    assert plateau.generator_cpus == sorted(set(os.sched_getaffinity(0)) - cpus)


def test_open_loop_corrected_latency_exceeds_uncorrected_when_server_paused(null_server, payload, tmp_path):
    server, port, cpus = null_server
    ep = _endpoint(port, server, cpus)
    settings = replace(SETTINGS, window=replace(SHORT, min_seconds=4.0, min_samples=100, warmup_seconds=0.5),
                       open_loop_connections=4)
    res = _measure_with_a_pause(server, lambda: measure_endpoint(
        ep, settings, payload=payload, twin=None, log_dir=tmp_path, modes=("open",), rates=[200.0]),
        after=1.0, pause=1.0)  # past the 0.5 s warm-up: inside the 4 s window
    assert res.status == "ok", res.failure
    (point,) = res.open_points
    corrected, uncorrected = point.latency_ms.stats, point.uncorrected_ms.stats
    # requests scheduled during the pause waited for one of 4 connections: the corrected latency counts it
    assert corrected["max"] > 500 and corrected["p99"] > 2 * uncorrected["p99"], (corrected, uncorrected)
    assert point.scheduled >= 700 and sum(point.errors.values()) == 0


def test_a_point_whose_sub_windows_disagree_is_measured_until_they_settle(null_server, payload, tmp_path):
    server, port, cpus = null_server
    ep = _endpoint(port, server, cpus)
    settings = replace(SETTINGS, window=replace(SHORT, min_seconds=3.0, min_samples=100), windows_per_point=3,
                       settle_windows=3)
    res = _measure_with_a_pause(server, lambda: measure_endpoint(
        ep, settings, payload=payload, twin=None, log_dir=tmp_path, modes=("closed",), users=[1]),
        after=0.4, pause=0.6)  # past the 0.2 s warm-up: inside the first 1 s sub-window
    assert res.status == "ok", res.failure
    (point,) = res.sweeps[0].points
    # the paused sub-window was followed by more until the last three agreed (or the limit of 3 more)
    assert 1 <= len(point.settling_rps) <= 3 and len(point.window_rps) == 3
    assert min(point.settling_rps) < 0.7 * sorted(point.window_rps)[1], (point.settling_rps, point.window_rps)
    assert point.settling_count > 0 and point.count == len(point.samples_ms)
    assert max(point.samples_ms) < 500  # the 0.6 s pause is not in the point's samples
    assert any("did not agree" in w for w in point.warnings)


def test_distributed_two_workers_merge_samples(null_server, payload, tmp_path):
    server, port, cpus = null_server
    ep = _endpoint(port, server, cpus)
    res = measure_endpoint(ep, SETTINGS, payload=payload, twin=None, log_dir=tmp_path, users=[2, 4], rates=[300.0],
                           workers=2, stop_rule=False)
    assert res.status == "ok", res.failure
    assert res.workers == 2
    points = res.sweeps[0].points + res.open_points
    assert [p.users for p in res.sweeps[0].points] == [2, 4]
    for p in points:
        assert sorted(c.role for c in p.generator_cpu) == (["master", "worker", "worker"] if p.mode == "closed"
                                                           else ["worker", "worker"])
        assert p.count >= SHORT.min_samples and len(p.samples_ms) == p.count
    assert points[-1].scheduled == pytest.approx(300 * points[-1].duration_s, rel=0.25)


def test_errors_are_counted_not_fatal(null_server, payload, tmp_path):
    server, port, cpus = null_server
    ep = _endpoint(port, server, cpus, path="/v1/models/error:predict")  # the null server answers 500
    res = measure_endpoint(ep, SETTINGS, payload=payload, twin=None, log_dir=tmp_path, users=[2], modes=("closed",))
    (point,) = res.sweeps[0].points
    assert set(point.errors) == {"http_500"} and point.error_flag and not point.valid
    assert res.saturation_rps is None


@pytest.mark.parametrize("paired_rounds", [0, 8])  # endpoints one after another, or in paired rounds
def test_server_killed_mid_load_marks_stack_failed_and_keeps_points(payload, tmp_path, paired_rounds):
    from deploy_compare.core.config import RunConfig
    from deploy_compare.core.context import RunContext
    from deploy_compare.core.results import load
    from deploy_compare.core.rundir import RunDir
    from deploy_compare.loadtests.results import LoadTestResults
    from deploy_compare.loadtests.stage import run

    servers, endpoints = [], []
    cpus = {sorted(os.sched_getaffinity(0))[0]}
    profile = replace(QUICK, name="test", load=replace(SETTINGS, max_users=16, plateau_gain=-1.0,
                                                       paired_rounds=paired_rounds,
                                                       paired_window=replace(SHORT, min_seconds=0.3)))
    run_dir = RunDir(tmp_path / "run").create()
    x = np.load(payload)  # digits, the mlp twin's data (NF layout); the null endpoint's reference is never read
    np.savez(run_dir.heldout("mlp"), x=x, logits_ref=np.zeros((len(x), 10), np.float32))
    try:
        for i in range(2):
            port = free_port()
            servers.append(start_null_server(port, tmp_path / f"null{i}.log", cpus=cpus))
            endpoints.append(replace(_endpoint(port, servers[-1], cpus), stack=f"null/{i}", model="mlp"))
        def kill_during_first_sweep() -> None:
            _wait_for_traffic(servers[0].pid)
            # the first step (0.2 s warm-up + 0.6 s window, up to 3 more sub-windows while they disagree) is
            # measured, the sweep goes on (1.5 s was too short on a loaded 2-core machine)
            time.sleep(2.5)
            servers[0].stop(timeout=2)

        killer = threading.Thread(target=kill_during_first_sweep)
        killer.start()
        ctx = RunContext(config=RunConfig(profile=profile, run_id="run", results_root=tmp_path), run_dir=run_dir)
        scoped: list[str] = []

        @contextlib.contextmanager
        def around(ep):  # the serving side scrapes server metrics around each endpoint's load
            scoped.append(f"enter {ep.stack}")
            yield
            scoped.append(f"exit {ep.stack}")

        run(ctx, endpoints, around=around)
        killer.join(timeout=70)
    finally:
        for s in servers:
            s.stop(timeout=5)
    saved = load(LoadTestResults, run_dir.loadtest)
    first, second = saved.endpoints
    during = "the paired rounds" if paired_rounds else "the closed-loop sweep"
    assert first.status == "failed" and f"exited during {during}" in first.failure, first.failure
    assert first.sweeps and any(p.count > 0 and not p.errors for p in first.sweeps[0].points)  # kept
    assert second.status == "ok" and second.saturation_rps and second.open_points
    (headroom,) = saved.headrooms  # one protocol, one payload
    assert headroom.protocol == "rest" and headroom.capacity_rps > 0 and headroom.ratio > 0
    assert headroom.fastest_rps == second.saturation_rps
    assert all(p.harness is not None and p.harness.users == p.users for p in second.sweeps[0].points)
    if paired_rounds:  # a scrape around every window, windows alternating: ABBA
        assert scoped[:4] == ["enter null/0", "exit null/0", "enter null/1", "exit null/1"]
        assert all(a.replace("enter", "exit") == b for a, b in zip(scoped[::2], scoped[1::2], strict=True))
        assert saved.paired_rounds == 8 and len(second.sweeps) == 8
    else:
        assert scoped == ["enter null/0", "exit null/0", "enter null/1", "exit null/1"]
    # beside loadtest.json: one CSV row per point, p95 with the other percentiles
    rows = list(csv.DictReader(run_dir.load_points.open(encoding="utf-8")))
    assert len(rows) == sum(len(s.points) for e in saved.endpoints for s in e.sweeps) + len(second.open_points)
    assert {r["endpoint"] for r in rows} == {"null/0 rest", "null/1 rest"}
    assert all(float(r["p90_ms"]) <= float(r["p95_ms"]) <= float(r["p99_ms"]) for r in rows if r["count"] != "0")


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_generator_headroom_per_protocol_is_measured_at_saturation(payload, tmp_path, capsys, protocol):
    settings = replace(SETTINGS, window=replace(SHORT, min_seconds=1.0, min_samples=200))
    server = "null" if protocol == "rest" else "torchserve"  # the gRPC null server answers TorchServe's method
    ep = Endpoint(stack=f"null/{protocol}", server=server, protocol=protocol, model="null", served_name="mlp",
                  target="http://127.0.0.1:1/predictions/mlp" if protocol == "rest" else "127.0.0.1:1",
                  layout="NF", server_cpus=[sorted(os.sched_getaffinity(0))[0]])
    h = measure_headroom(ep, settings, payload, tmp_path, users=[1, 4, 16, 64])
    best = max(h.points, key=lambda p: p.throughput_rps)
    with capsys.disabled():
        print(f"\n{protocol} generator capacity: {h.capacity_rps:,.0f} req/s at {h.capacity_users} users, "
              f"{h.generator_cpu_fraction:.0%} CPU of core {h.generator_cpus}; {h.limited_by}; p50 at 1 user "
              f"{h.points[0].latency_ms.stats['p50']:.3f} ms (load average {os.getloadavg()[0]:.1f})")
    assert [p.users for p in h.points] == [1, 4, 16, 64] and all(p.count >= 200 for p in h.points)
    assert h.capacity_rps == best.throughput_rps and h.capacity_users == best.users  # measured, not extrapolated
    assert not any(p.errors for p in h.points)
    assert h.capacity_rps >= 2000  # a modest floor for a busy CI machine


def test_machine_reference_samples_a_real_null_endpoint_and_survives_its_death(tmp_path):
    from deploy_compare.core import results
    from deploy_compare.loadtests.reference import ReferenceProbe
    from deploy_compare.loadtests.results import LoadTestResults

    with ReferenceProbe({0}, {1} if os.cpu_count() and os.cpu_count() > 1 else None, tmp_path).running() as probe:
        first, second = probe.sample("a"), probe.sample("b")
        assert first and second and first.count > 500 and 0 < first.p50_ms < 5
        assert probe.record.spread is not None and probe.record.spread >= 0
        probe._server.stop(timeout=5)  # the null endpoint is gone: recorded, never raised
        assert probe.sample("c") is None and "reference sample before c failed" in probe.record.failure
        assert probe.sample("d") is None  # no more tries once it failed
    rec = probe.record
    assert [s.before for s in rec.samples] == ["a", "b"] and probe._server is None
    back = results.from_json_data(LoadTestResults, results.to_json_data(
        LoadTestResults(profile="quick", label="", settings={}, locust_version="x", reference=rec)))
    assert back.reference == rec
