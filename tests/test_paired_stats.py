"""Paired comparisons (conventions rule 15): the exact sign test, its interval of the median, the per-round
ratio and what it lets the report say; the balanced order of the paired rounds."""
from __future__ import annotations

import math

import pytest

from deploy_compare.core.results import from_json_data, to_json_data
from deploy_compare.core.stats import (
    PairedRatio,
    balanced_order,
    paired_claim,
    paired_ratio,
    sign_interval,
    sign_test_p,
)


def test_sign_test_smallest_p_is_two_to_one_minus_n():
    assert sign_test_p([1.0] * 4) == pytest.approx(0.125)  # 4 rounds can never reach 0.05
    assert sign_test_p([1.0] * 8) == pytest.approx(2 ** -7)  # 8 rounds: < 0.01
    assert sign_test_p([1.0, -1.0] * 4) == 1.0
    assert sign_test_p([0.0, 0.0]) == 1.0  # ties carry no sign


def test_sign_interval_order_statistics():
    x = [float(i) for i in range(8)]
    assert sign_interval(x, 0.99) == (0.0, 7.0)  # coverage 1 - 2/256 = 99.2%
    assert sign_interval(x, 0.95) == (0.0, 7.0)  # k = 2 covers only 93%
    assert sign_interval(list(range(20)), 0.95) == (5, 14)  # the textbook k = 6 for n = 20
    assert sign_interval([1.0, 2.0, 3.0, 4.0], 0.95) == (None, None)  # too few to bound the median


def _ratio(a, b, higher=False):
    return paired_ratio(a, b, a_name="A", b_name="B", metric="p50_ms", load="1 users", higher_is_better=higher)


def test_ranking_only_when_every_round_agrees_at_8_rounds():
    r = _ratio([0.9, 0.92, 0.88, 0.91, 0.95, 0.9, 0.89, 0.93], [1.0] * 8)
    assert r.excludes_one(0.99) and r.winner() == "A"
    assert r.ratio == pytest.approx(math.sqrt(0.9 * 0.91))
    assert "p50 at 1 users: A 10% lower (5% to 12%) than B" in paired_claim(r)
    one_against = _ratio([0.9, 0.92, 0.88, 0.91, 1.05, 0.9, 0.89, 0.93], [1.0] * 8)
    assert one_against.winner() is None
    assert "no difference found between A and B (within ±12%" in paired_claim(one_against)
    assert "too few rounds (4)" in paired_claim(_ratio([1, 2, 3, 4], [5, 5, 5, 5]))


def test_higher_is_better_and_flipped():
    r = _ratio([1100.0] * 8, [1000.0] * 8, higher=True)
    assert r.winner() == "A" and "A 10% higher" in paired_claim(r)
    f = r.flipped()
    assert f.winner() == "A" and f.a == "B" and f.ratio == pytest.approx(1 / 1.1)
    assert f.ci99_lo == pytest.approx(1 / r.ci99_hi)


def test_paired_ratio_round_trips_json():
    r = _ratio([0.9] * 8, [1.0] * 8)
    assert from_json_data(PairedRatio, to_json_data(r)) == r
    short = _ratio([1, 2], [2, 1])
    assert from_json_data(PairedRatio, to_json_data(short)).ci99_lo is None


def test_paired_ratio_rejects_unpaired_or_non_positive():
    with pytest.raises(ValueError, match="same non-zero number"):
        _ratio([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        _ratio([0.0], [1.0])


def test_balanced_order_abba_and_positions():
    assert [balanced_order("AB", r) for r in range(4)] == [list("AB"), list("BA"), list("BA"), list("AB")]
    items = list("ABCD")
    orders = [balanced_order(items, r) for r in range(2 * len(items))]
    for item in items:  # every endpoint in every position equally often over 2n rounds
        positions = sorted(o.index(item) for o in orders)
        assert positions == sorted(list(range(4)) * 2)
    for a in items:  # ... and as often before as after each other one
        for b in items:
            if a != b:
                assert sum(o.index(a) < o.index(b) for o in orders) == len(orders) // 2
