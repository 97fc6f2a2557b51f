"""Cross-check of our latency figures against an independent C load generator (wrk) on the same endpoint,
closed loop at the same concurrency, generator pinned to the other core than the server. Skipped when
wrk is absent (`apt-get install -y wrk`; .ci/run installs it).

The goal is our p50 within 5% of wrk's at 1 user on a ~1 ms endpoint and within 3% from 4 users up.
The test's tolerance adds wrk's own back-to-back variation: on the quiet 2-core machine, three 3 s wrk
runs at 1 connection on one warm TorchServe gave p50 0.781, 0.757 and 0.720 ms (the server itself moves
by ~4% either way between windows; ours, interleaved, 0.754, 0.772 and 0.799 ms). wrk runs before and
after our run; the server may have drifted between them, so our p50 is compared with the nearer end of
the interval they span (inside it: agreement). When those two wrk runs disagree by more than twice the
noise, the machine is too busy for any cross-check and the test skips with the figures.
"""
from __future__ import annotations

import os
from dataclasses import replace

import pytest

from core.config import QUICK
from core.stats import WindowPolicy
from loadtests import wrk
from loadtests.launch import free_port
from loadtests.nullserver import start_null_server
from loadtests.payload import build_payload
from loadtests.requests import wire_requests
from loadtests.stage import measure_endpoint
from serving.endpoint import Endpoint

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not wrk.available(), reason=f"wrk is not installed: {wrk.INSTALL}")]

WINDOW = WindowPolicy(warmup_seconds=0.5, warmup_samples=10, min_seconds=3.0, min_samples=200, max_seconds=10.0)
SETTINGS = replace(QUICK.load, window=WINDOW, twins=(), server_warmup_seconds=0.0, one_user_seconds=0.0)
NOISE = 0.05  # wrk's own back-to-back p50 variation measured on the shared machine
TOLERANCE = {1: 0.05 + NOISE, 4: 0.03 + NOISE}


def _cores() -> tuple[set[int], set[int]]:
    cpus = sorted(os.sched_getaffinity(0))
    return {cpus[0]}, set(cpus[1:]) or {cpus[0]}


def cross_check(endpoint: Endpoint, payload: str, twin: str | None, tmp_path,
                warm_seconds: float = 0.0) -> dict[int, tuple[float, tuple[float, float]]]:
    """{users: (our p50, (wrk's p50 before ours, after ours))} at 1 and 4 users."""
    _, gen = _cores()
    body = wire_requests(endpoint, build_payload(payload, twin=twin, layout=endpoint.layout).batches(1))[0]

    def run_wrk() -> dict[int, float]:
        return {c: wrk.run_wrk(endpoint.target, body, endpoint.headers, connections=c, seconds=3,
                               work_dir=tmp_path / "wrk", cpus=gen).p50_ms for c in TOLERANCE}

    if warm_seconds:  # a freshly started server is still speeding up (TorchServe: ~4x over its first 20 s here)
        wrk.run_wrk(endpoint.target, body, endpoint.headers, connections=4, seconds=warm_seconds,
                    work_dir=tmp_path / "wrk", cpus=gen)
    before = run_wrk()
    ours = measure_endpoint(endpoint, SETTINGS, payload=payload, twin=twin, log_dir=tmp_path, modes=("closed",),
                            users=sorted(TOLERANCE), stop_rule=False)
    after = run_wrk()
    assert ours.status == "ok", ours.failure
    ours_p50 = {p.users: p.latency_ms.stats["p50"] for p in ours.sweeps[0].points if p.latency_ms}
    assert sorted(ours_p50) == sorted(TOLERANCE) and not any(p.errors for p in ours.sweeps[0].points)
    spread = max(abs(before[u] / after[u] - 1) for u in TOLERANCE)
    if spread > 2 * NOISE:  # the reference itself moved: no cross-check is possible on this machine right now
        pytest.skip(f"wrk's own p50 moved by {spread:.0%} between its runs before and after ours ({before} -> "
                    f"{after}; ours {ours_p50}; load average {os.getloadavg()[0]:.1f}): the machine is too busy "
                    "to cross-check")
    out = {u: (ours_p50[u], (before[u], after[u])) for u in TOLERANCE}
    print(f"\n{endpoint.stack} ({os.getloadavg()[0]:.1f} load average): " + "; ".join(
        f"{u} users: ours p50 {a:.3f} ms, wrk {b[0]:.3f} before / {b[1]:.3f} after ({_deviation(a, b):+.1%})"
        for u, (a, b) in out.items()))
    return out


def _deviation(ours: float, wrk_runs: tuple[float, float]) -> float:
    """Relative distance of our p50 from the interval wrk's runs span (0 inside it)."""
    low, high = min(wrk_runs), max(wrk_runs)
    return ours / high - 1 if ours > high else (ours / low - 1 if ours < low else 0.0)


def test_deviation_is_measured_from_the_nearer_end_of_wrks_interval():
    assert _deviation(0.75, (0.72, 0.78)) == 0.0
    assert _deviation(0.819, (0.72, 0.78)) == pytest.approx(0.05)
    assert _deviation(0.684, (0.78, 0.72)) == pytest.approx(-0.05)


def _assert_agree(figures: dict[int, tuple[float, tuple[float, float]]]) -> None:
    for users, (ours, theirs) in figures.items():
        assert abs(_deviation(ours, theirs)) <= TOLERANCE[users], (users, ours, theirs)


def test_p50_agrees_with_wrk_on_a_1ms_null_endpoint(tmp_path):
    import numpy as np
    from sklearn.datasets import load_digits

    np.save(tmp_path / "x.npy", (load_digits().data[:64] / 16.0).astype(np.float32))
    server_cpus, _ = _cores()
    port = free_port()
    server = start_null_server(port, tmp_path / "null.log", cpus=server_cpus, delay_ms=1.0)
    try:
        ep = Endpoint(stack="null/1ms", server="null", protocol="rest", model="null", served_name="null",
                      target=f"http://127.0.0.1:{port}/predictions/mlp", layout="NF", server_pids=[server.pid],
                      server_cpus=sorted(server_cpus))
        _assert_agree(cross_check(ep, str(tmp_path / "x.npy"), None, tmp_path))
    finally:
        server.stop(timeout=5)


def test_p50_agrees_with_wrk_on_torchserve(torchserve_mlp, spine_run, tmp_path):
    ep = next(e for e in torchserve_mlp.endpoints() if e.protocol == "rest")
    _assert_agree(cross_check(ep, str(spine_run.path), "mlp", tmp_path, warm_seconds=20))
