"""`deploy-compare compare`: two stored runs, per endpoint saturation and p50 at 1 user, against the limits."""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from deploy_compare.app.commands import compare
from deploy_compare.core import results
from deploy_compare.core.errors import UserError

RUN = Path(__file__).parent / "fixtures" / "report" / "run"


TS = "torchserve/torchscript rest (mlp) [native]"  # changed in B
FAILED = "torchserve/savedmodel grpc (mlp) [native]"  # failed in B


def _label(ep: dict) -> str:
    e = ep["endpoint"]
    return f"{e['stack']} {e['protocol']} ({e['model']}) [{e['launcher']}]"


def _runs(tmp_path: Path) -> tuple[Path, Path]:
    """The report fixture's run twice; in B, TorchScript REST (native, mlp) saturates 20% higher and its 1-user
    p50 is 3% slower, SavedModel gRPC (native) failed, and the references differ."""
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(RUN, a)
    shutil.copytree(RUN, b)
    data = json.loads((b / "loadtest.json").read_text(encoding="utf-8"))
    assert {TS, FAILED} <= {_label(ep) for ep in data["endpoints"]}
    for ep in data["endpoints"]:
        if _label(ep) == TS:
            ep["saturation_rps"] *= 1.2
            ep["saturation"]["rps"] *= 1.2
            for p in (p for s in ep["sweeps"] for p in s["points"] if p["users"] == 1):
                p["latency_ms"]["stats"]["p50"] *= 1.03
        if _label(ep) == FAILED:
            ep["status"], ep["failure"] = "failed", "server process exited"
    data["reference"] = {"loop": "l", "server_cpus": [0], "generator_cpus": [1], "failure": None, "samples": [
        {"before": x, "unix": 1.0, "count": n, "seconds": 1.0, "rps": float(n), "p50_ms": 0.03}
        for x, n in (("one", 30000), ("end", 36000))]}
    (b / "loadtest.json").write_text(json.dumps(data), encoding="utf-8")
    return a, b


def test_compare_says_which_endpoints_agree_within_the_limits(tmp_path):
    a, b = _runs(tmp_path)
    cmp = compare.compare_runs(a, b)
    rows = {e.endpoint: e for e in cmp.endpoints}
    every = {_label(ep) for ep in json.loads((a / "loadtest.json").read_text(encoding="utf-8"))["endpoints"]}
    assert set(rows) == every - {FAILED}
    ts = rows[TS]
    assert ts.saturation.apart == pytest.approx(0.2) and ts.saturation.agree is False
    assert ts.p50_1user_ms.apart == pytest.approx(0.03) and ts.p50_1user_ms.agree is True
    assert all(e.saturation.apart == 0 and e.p50_1user_ms.agree for e in cmp.endpoints if e is not ts)
    assert cmp.only_in_one == [f"{FAILED}: failed in b"]
    assert not cmp.agree
    assert [r.spread for r in cmp.references] == [None, pytest.approx(0.2)]
    loose = compare.compare_runs(a, b, saturation_limit=0.25)
    assert loose.absolutes_agree and not loose.agree  # a failed endpoint is not left out: it fails the check
    assert loose.problems == [f"not compared: {FAILED}: failed in b"]


def test_compare_cli_checks_writes_json_and_refuses_a_run_without_a_load_stage(tmp_path, capsys):
    a, b = _runs(tmp_path)
    parser = argparse.ArgumentParser()
    compare.configure(parser)
    out = tmp_path / "cmp.json"
    assert compare.main(parser.parse_args([str(a), str(b), "--json", str(out)])) == 0
    assert compare.main(parser.parse_args([str(a), str(b), "--check"])) == 1
    assert compare.main(parser.parse_args([str(a), str(b), "--check", "--ratios-only"])) == 1  # the failed one
    assert compare.main(parser.parse_args([str(a), str(a), "--check"])) == 0
    text = capsys.readouterr().out
    n = len(compare.compare_runs(a, a).endpoints) - 1  # all but the failed one
    assert f"{n - 1} of {n} saturations and {n} of {n} p50s at 1 user within their limits" in text
    assert "machine reference during b's load stage: 30,000-36,000 req/s, moved 20%" in text
    back = results.load(compare.RunComparison, out)
    assert back == compare.compare_runs(a, b)
    (b / "loadtest.json").unlink()
    with pytest.raises(UserError, match="loadtest.json does not exist"):
        compare.compare_runs(a, b)


def _edit(run: Path, change) -> None:
    data = json.loads((run / "loadtest.json").read_text(encoding="utf-8"))
    change(data)
    (run / "loadtest.json").write_text(json.dumps(data), encoding="utf-8")


def _copies(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(RUN, a)
    shutil.copytree(RUN, b)
    assert compare.compare_runs(a, b).agree
    return a, b


def _first(data: dict) -> dict:
    return data["endpoints"][0]


def test_a_missing_figure_is_not_agreement(tmp_path):
    a, b = _copies(tmp_path)

    def drop_one_user(data):
        for s in _first(data)["sweeps"]:
            s["points"] = [p for p in s["points"] if p["users"] != 1]
    _edit(b, drop_one_user)
    cmp = compare.compare_runs(a, b)
    assert not cmp.agree
    assert any("no p50 at 1 user in b: a missing figure is not agreement" in p for p in cmp.problems)


def test_a_lower_bound_is_not_compared_with_a_found_saturation(tmp_path):
    a, b = _copies(tmp_path)
    assert _first(json.loads((a / "loadtest.json").read_text()))["saturation"]["found"] is False  # quick: 8 users

    def found(data):
        _first(data)["saturation"]["found"] = True
    _edit(b, found)
    cmp = compare.compare_runs(a, b)
    assert not cmp.agree
    assert any("saturation found in b but only a lower bound in a" in p for p in cmp.problems)
    assert cmp.endpoints[0].saturation.agree is None  # not compared as if alike


def test_a_different_profile_or_idle_policy_is_flagged(tmp_path):
    a, b = _copies(tmp_path)

    def other(data):
        data["profile"] = "full"
        data["cpu_idle"] = {"policy": "default", "held": False, "driver": "", "governor": "", "note": "",
                            "idle_seconds": {}}
    _edit(b, other)
    problems = compare.compare_runs(a, b).problems
    assert any(p.startswith("different profiles: a ") and p.endswith(", b full") for p in problems)
    assert any("different idle policies" in p and "b default" in p for p in problems)


def _comparison(ratios: list[float]) -> dict:
    from deploy_compare.core.stats import paired_ratio

    r = paired_ratio(ratios, [1.0] * len(ratios), a_name="torchserve/onnx rest (mlp) [native]",
                     b_name="torchserve/torchscript rest (mlp) [native]", metric="p50_ms", load="1 users",
                     higher_is_better=False)
    return results.to_json_data(r)


def test_within_run_ratios_overlap_and_reversed_rankings_decide_the_check(tmp_path, capsys):
    a, b = _copies(tmp_path)
    _edit(a, lambda d: d.update(paired_rounds=8, comparisons=[_comparison([0.8, 0.82, 0.85, 0.79, 0.8, 0.81,
                                                                           0.83, 0.84])]))
    _edit(b, lambda d: d.update(paired_rounds=8, comparisons=[_comparison([0.84, 0.9, 0.95, 1.05, 0.88, 0.86,
                                                                           0.9, 0.92])]))
    cmp = compare.compare_runs(a, b)
    (r,) = cmp.ratios
    assert r.winner_a == "torchserve/onnx rest (mlp) [native]" and r.winner_b is None
    assert r.overlap and not r.reversed and cmp.agree
    _edit(b, lambda d: d.update(comparisons=[_comparison([1.2, 1.25, 1.3, 1.22, 1.21, 1.24, 1.26, 1.3])]))
    cmp = compare.compare_runs(a, b)
    (r,) = cmp.ratios
    assert r.reversed and not r.overlap and not cmp.agree
    parser = argparse.ArgumentParser()
    compare.configure(parser)
    assert compare.main(parser.parse_args([str(a), str(b), "--check", "--ratios-only"])) == 1
    assert "REVERSED" in capsys.readouterr().out
