"""Measurement order cannot decide a ranking: on a freshly started TorchServe serving the mlp as TorchScript
and ONNX, the load stage's method (both endpoints warmed, then paired rounds: 1-user windows of the two
REST endpoints alternating in a balanced order, ABBA BAAB) is run with TorchScript listed first and then,
on another fresh server, with ONNX listed first. Each run's comparison is the per-round p50 ratio with an
exact sign-test interval; a ranking is stated only when its 99% interval excludes no difference.

The test fails when the two orders state opposite rankings. (Measured one after another, they did: on a
fresh clone, TorchScript first gave torchscript 0.909 / onnx 0.712 ms; ONNX first gave onnx 1.023 /
torchscript 0.921 ms.)
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from deploy_compare.core.config import QUICK
from deploy_compare.core.stats import PairedRatio, paired_claim
from deploy_compare.loadtests.stage import closed_paired, endpoint_warmup, measure_endpoint

pytestmark = pytest.mark.integration

# the quick profile's paired windows and rounds, at 1 user only (what is tested is the order)
SETTINGS = replace(QUICK.load, paired_users=(1,))


def _p50_ratio(run_dir, order: list[str], tmp_path) -> PairedRatio:
    from tests.servers import running_torchserve

    with running_torchserve(run_dir, twins=("mlp",), formats=("torchscript", "onnx-torch")) as server:
        endpoints = {e.stack: e for e in server.endpoints() if e.protocol == "rest"}
        assert sorted(endpoints) == sorted(order), sorted(endpoints)
        chosen = [endpoints[s] for s in order]
        # as the load stage warms them: the first until the server is stable, the second its own worker
        measured = {i: measure_endpoint(ep, SETTINGS if i == 0 else endpoint_warmup(SETTINGS),
                                        payload=str(run_dir.path), twin="mlp", log_dir=tmp_path, modes=(), warm=True)
                    for i, ep in enumerate(chosen)}
        assert all(m.status == "ok" for m in measured.values()), [m.failure for m in measured.values()]
        orders, comparisons = closed_paired(chosen, measured, SETTINGS, payload=str(run_dir.path), log_dir=tmp_path)
        assert all(m.status == "ok" for m in measured.values()), [m.failure for m in measured.values()]
    print(f"\norders: {orders}")
    (p50,) = [c for c in comparisons if c.metric == "p50_ms"]
    if "torchscript" not in p50.a:  # the same direction in both runs: torchscript / onnx
        p50 = p50.flipped()
    print(f"{order[0]} first: per-round torchscript/onnx p50 ratios {[round(r, 3) for r in p50.ratios]}; "
          f"{paired_claim(p50)}")
    return p50


def test_reverse_order_does_not_change_the_ranking(spine_run, tmp_path):
    order = ["torchserve/torchscript", "torchserve/onnx-torch"]
    forward = _p50_ratio(spine_run, order, tmp_path / "forward")
    reverse = _p50_ratio(spine_run, order[::-1], tmp_path / "reverse")
    assert forward.n >= 8 and reverse.n >= 8, (forward.n, reverse.n)
    wins = {forward.winner(), reverse.winner()} - {None}
    assert len(wins) <= 1, f"opposite rankings at 99%: {paired_claim(forward)} / {paired_claim(reverse)}"
