"""Paired rounds against two null endpoints on 127.0.0.1 (`loadtests/paired.py`): gated locust processes
take one window per command, rounds alternate in a balanced order, the idle server's CPU is recorded with each
window, every endpoint gets one sweep per round and its open-loop points in rounds too, the comparisons are
per-round ratios, and a server killed between the loops fails its endpoint without stopping the other."""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from deploy_compare.core.config import QUICK
from deploy_compare.core.stats import WindowPolicy
from deploy_compare.loadtests.launch import free_port
from deploy_compare.loadtests.nullserver import start_null_server
from deploy_compare.loadtests.paired import measure_paired_open, paired_comparisons
from deploy_compare.loadtests.results import EndpointLoad, LatencySummary, MeasuredPoint
from deploy_compare.loadtests.stage import _alive, closed_paired, measure_endpoint, paired_endpoints
from deploy_compare.serving.endpoint import Endpoint

pytestmark = pytest.mark.integration

SHORT = WindowPolicy(warmup_seconds=0.2, warmup_samples=10, min_seconds=0.4, min_samples=50, max_seconds=8.0)
SETTINGS = replace(QUICK.load, window=SHORT, paired_window=SHORT, twins=(), drain_seconds=3.0,
                   server_warmup_seconds=0.0, paired_rounds=4, paired_users=(1, 2), open_loop_fractions=(0.3,))


def test_two_endpoints_in_paired_rounds(tmp_path):
    from sklearn.datasets import load_digits

    np.save(tmp_path / "x.npy", load_digits().data[:64].astype(np.float32) / 16.0)
    payload = str(tmp_path / "x.npy")
    cpus = {sorted(os.sched_getaffinity(0))[0]}
    servers, chosen = [], []
    try:
        for name in ("a", "b"):
            port = free_port()
            # answers after 0.5 ms, so the generator keeps headroom at 2 users
            server = start_null_server(port, tmp_path / f"null-{name}.log", cpus=cpus, delay_ms=0.5)
            servers.append(server)
            chosen.append(Endpoint(stack=f"null/{name}", server="null", launcher=name, protocol="rest", model="null",
                                   served_name="null", target=f"http://127.0.0.1:{port}/v1/models/null:predict",
                                   layout="NF", server_pids=[server.pid], server_cpus=sorted(cpus)))
        measured = {i: measure_endpoint(ep, SETTINGS, payload=payload, twin=None, log_dir=tmp_path, modes=(),
                                        warm=False) for i, ep in enumerate(chosen)}
        orders, comparisons = closed_paired(chosen, measured, SETTINGS, payload=payload, log_dir=tmp_path)
        a, b = (ep.describe()["stack"] for ep in chosen)
        assert [[x.split(" ")[0] for x in o] for o in orders] == [[a, b], [b, a], [b, a], [a, b]]  # ABBA
        for m in measured.values():
            assert m.status == "ok", m.failure
            assert [s.repeat for s in m.sweeps] == [0, 1, 2, 3]
            assert all([p.users for p in s.points] == [1, 2] and all(p.valid for p in s.points) for s in m.sweeps)
            assert m.saturation is not None and not m.saturation.found  # a fixed list of users: a lower bound
            assert all(len(p.idle_servers_cpu) == 1 for s in m.sweeps for p in s.points)  # the other server's
            assert m.order == [0, 1, 1, 0] or m.order == [1, 0, 0, 1]
        assert {(c.metric, c.load) for c in comparisons} == {(m, f"{u} users") for m in ("p50_ms", "throughput_rps")
                                                             for u in (1, 2)}
        assert all(c.n == 4 and c.ci99_lo is None and c.winner() is None for c in comparisons)  # 4 rounds: no claim

        eps = paired_endpoints(chosen, measured, SETTINGS, payload=payload, log_dir=tmp_path)
        measure_paired_open(eps, SETTINGS, log_dir=tmp_path, alive=_alive, say=lambda _: None)
        for m in measured.values():
            assert m.status == "ok", m.failure
            assert [p.repeat for p in m.open_points] == [0, 1, 2, 3]
            want = round(0.3 * m.saturation_rps, 1)
            assert all(p.mode == "open" and p.target_rate == want for p in m.open_points)
        opened = paired_comparisons([(f"null/{n}", "null", m) for n, m in zip("ab", measured.values(), strict=True)])
        # a ratio per round in which both open-loop points were valid (late sends invalidate one on a busy machine)
        common = set.intersection(*({p.repeat for p in m.open_points if p.valid} for m in measured.values()))
        assert [c.n for c in opened if c.load == "30% of its saturation (open loop)"] == ([len(common)] if common
                                                                                          else [])

        servers[1].stop(timeout=5)  # b's server is gone: its endpoint fails, a's is measured
        measure_paired_open(eps, replace(SETTINGS, paired_rounds=2), log_dir=tmp_path, alive=_alive,
                            say=lambda _: None)
        assert measured[0].status == "ok" and len(measured[0].open_points) == 6
        assert measured[1].status == "failed" and measured[1].failure
    finally:
        for s in servers:
            s.stop(timeout=5)


def _open_point(rnd: int, valid: bool) -> MeasuredPoint:
    return MeasuredPoint(mode="open", users=None, target_rate=300.0, repeat=rnd, duration_s=1.0, count=300,
                         errors={}, error_rate=0.0, throughput_rps=300.0,
                         latency_ms=LatencySummary(stats={"p50": 1.0}, backed=["p50"]), samples_ms=[],
                         generator_cpu=[], valid=valid)


def test_open_loop_points_valid_in_no_common_round_give_no_comparison():
    """a's open-loop points are valid in rounds 0-1, b's in rounds 2-3: no round pairs them, so no ratio (the CI
    of a fresh machine once raised 'paired figures need the same non-zero number of rounds' here)."""
    def load(valid_rounds: set[int]) -> EndpointLoad:
        return EndpointLoad(endpoint={}, status="ok", failure=None, payload={}, generator_cpus=[], workers=0,
                            saturation_rps=1000.0, open_points=[_open_point(r, r in valid_rounds) for r in range(4)])

    assert paired_comparisons([("a", "null", load({0, 1})), ("b", "null", load({2, 3}))]) == []
    [both] = paired_comparisons([("a", "null", load({0, 1, 2})), ("b", "null", load({1, 2, 3}))])
    assert both.n == 2 and both.load == "30% of its saturation (open loop)"
