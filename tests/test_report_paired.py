"""The report says only what a paired interval supports (conventions rule 15): the container tax of a load
figure is the paired ratio container / native, stated only where its 99% interval excludes no difference;
the side-by-side section lists every comparison with its intervals; sequential figures state no ranking."""
from __future__ import annotations

import json

from deploy_compare.app.report.claims import difference_text, paired, paired_at_top, subtraction_conditions
from deploy_compare.app.report.served_sections import containers, paired_section
from deploy_compare.core.cpuidle import CpuIdleRecord
from deploy_compare.core.stats import paired_ratio
from tests.report_samples import full_results

NATIVE = "torchserve/torchscript rest (mlp) [native]"
DOCKER = "torchserve/torchscript rest (mlp) [docker]"


def _ratio(a_values, metric="p50_ms", load="1 users", higher=False):
    return paired_ratio(a_values, [1.0] * len(a_values), a_name=NATIVE, b_name=DOCKER, metric=metric, load=load,
                        higher_is_better=higher)


def _text(blocks) -> str:
    return json.dumps([b.__dict__ for b in blocks], default=str, ensure_ascii=False)


def test_container_tax_only_where_the_99_interval_excludes_no_difference():
    res = full_results()
    res.paired_rounds = 8
    # native p50 10% below the container's in every round; throughput the same within noise
    res.comparisons = [_ratio([0.9, 0.91, 0.89, 0.9, 0.92, 0.88, 0.9, 0.91]),
                       _ratio([1.02, 0.97, 1.01, 0.99, 1.03, 0.98, 1.0, 1.01], "throughput_rps", "8 users", True)]
    p50 = paired(res, DOCKER, NATIVE, "p50_ms", "1 users")
    assert p50 is not None and p50.a == DOCKER and p50.winner() == NATIVE
    assert difference_text(p50).startswith("+11% (+9% to +14%, 99%, 8 rounds)")
    sat = paired_at_top(res, DOCKER, NATIVE, "throughput_rps")
    assert sat is not None and sat.load == "8 users"
    assert difference_text(sat) == "no difference found (within ±3%, 8 rounds)"
    text = _text(containers(res, {}))
    assert "+11% (+9% to +14%, 99%, 8 rounds)" in text and "no difference found (within ±3%, 8 rounds)" in text
    assert "not measured side by side" in text  # p99 has no paired figure: no tax stated


def test_sequential_runs_state_no_tax_and_no_ranking():
    res = full_results()
    assert not res.comparisons
    text = _text(containers(res, {}))
    assert "measured one after another: no interval, not a finding" in text
    assert "states no ranking" in _text(paired_section(res))


def test_side_by_side_section_lists_intervals_and_verdicts():
    res = full_results()
    res.paired_rounds = 8
    res.comparisons = [_ratio([0.9, 0.91, 0.89, 0.9, 0.92, 0.88, 0.9, 0.91]),
                       _ratio([0.9, 1.1, 0.95, 1.05, 1.0, 0.97, 1.02, 0.99])]
    text = _text(paired_section(res))
    assert f"**{NATIVE}** lower by 10%" in text
    assert "no difference found (within ±10%)" in text
    assert "8 rounds" in text and "2^(1-n)" in text


def test_subtraction_conditions_say_whether_the_idle_policies_match():
    res = full_results()
    held = CpuIdleRecord(policy="poll", held=True, driver="haltpoll", governor="haltpoll", note="held")
    res.cpu_idle = held
    assert "cannot show that the tax subtracts like from like" in subtraction_conditions(res)
    res.floor_cpu_idle = held
    assert "both measured with idle CPUs polling" in subtraction_conditions(res)
    res.floor_cpu_idle = CpuIdleRecord(policy="default", held=False, driver="haltpoll", governor="haltpoll", note="")
    assert "the two differ" in subtraction_conditions(res)
