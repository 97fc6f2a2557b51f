"""`deploy-compare compare`: two stored runs, per endpoint saturation and p50 at 1 user, against the limits."""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from core import results
from core.errors import UserError
from deploy_compare.commands import compare

RUN = Path(__file__).parent / "fixtures" / "report" / "run"


def _runs(tmp_path: Path) -> tuple[Path, Path]:
    """The report fixture's run twice; in B, TorchScript REST saturates 20% higher and its 1-user p50 is 3%
    slower, ONNX gRPC failed, and the references differ."""
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(RUN, a)
    shutil.copytree(RUN, b)
    data = json.loads((b / "loadtest.json").read_text(encoding="utf-8"))
    for ep in data["endpoints"]:
        if (ep["endpoint"]["stack"], ep["endpoint"]["protocol"]) == ("torchserve/torchscript", "rest"):
            ep["saturation_rps"] *= 1.2
            ep["saturation"]["rps"] *= 1.2
            for p in (p for s in ep["sweeps"] for p in s["points"] if p["users"] == 1):
                p["latency_ms"]["stats"]["p50"] *= 1.03
        if (ep["endpoint"]["stack"], ep["endpoint"]["protocol"]) == ("torchserve/onnx", "grpc"):
            ep["status"], ep["failure"] = "failed", "server process exited"
    data["reference"] = {"loop": "l", "server_cpus": [0], "generator_cpus": [1], "failure": None, "samples": [
        {"before": x, "unix": 1.0, "count": n, "seconds": 1.0, "rps": float(n), "p50_ms": 0.03}
        for x, n in (("one", 30000), ("end", 36000))]}
    (b / "loadtest.json").write_text(json.dumps(data), encoding="utf-8")
    return a, b


def test_compare_says_which_endpoints_agree_within_the_limits(tmp_path):
    a, b = _runs(tmp_path)
    cmp = compare.compare_runs(a, b)
    rows = {e.endpoint.split(" (")[0]: e for e in cmp.endpoints}
    assert set(rows) == {"torchserve/torchscript rest", "torchserve/torchscript grpc", "torchserve/onnx rest"}
    ts = rows["torchserve/torchscript rest"]
    assert ts.saturation.apart == pytest.approx(0.2) and ts.saturation.agree is False
    assert ts.p50_1user_ms.apart == pytest.approx(0.03) and ts.p50_1user_ms.agree is True
    assert all(e.saturation.apart == 0 and e.p50_1user_ms.agree for e in cmp.endpoints if e is not ts)
    assert cmp.only_in_one == ["torchserve/onnx grpc (mlp) [native]: failed in b"]
    assert not cmp.agree
    assert [r.spread for r in cmp.references] == [None, pytest.approx(0.2)]
    loose = compare.compare_runs(a, b, saturation_limit=0.25)
    assert loose.agree


def test_compare_cli_checks_writes_json_and_refuses_a_run_without_a_load_stage(tmp_path, capsys):
    a, b = _runs(tmp_path)
    parser = argparse.ArgumentParser()
    compare.configure(parser)
    out = tmp_path / "cmp.json"
    assert compare.main(parser.parse_args([str(a), str(b), "--json", str(out)])) == 0
    assert compare.main(parser.parse_args([str(a), str(b), "--check"])) == 1
    assert compare.main(parser.parse_args([str(a), str(a), "--check"])) == 0
    text = capsys.readouterr().out
    assert "2 of 3 saturations and 3 of 3 p50s at 1 user within their limits" in text
    assert "machine reference during b's load stage: 30,000-36,000 req/s, moved 20%" in text
    back = results.load(compare.RunComparison, out)
    assert back == compare.compare_runs(a, b)
    (b / "loadtest.json").unlink()
    with pytest.raises(UserError, match="loadtest.json does not exist"):
        compare.compare_runs(a, b)
