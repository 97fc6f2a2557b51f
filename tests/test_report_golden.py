"""Golden-file test of the report: a stored run folder (tests/fixtures/report/run/) rendered to report.md and
load_points.csv, compared with tests/fixtures/report/golden_report.md and golden_load_points.csv.

Regenerate after an intended change with `REPORT_GOLDEN_UPDATE=1 pytest tests/test_report_golden.py`, then
review the diff of the golden file like code.
"""
from __future__ import annotations

import csv
import difflib
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from deploy_compare.app.report import ReportResults, render
from deploy_compare.core import results
from deploy_compare.core.rundir import RunDir
from tests.conftest import OPT_IN

FIXTURES = Path(__file__).parent / "fixtures" / "report"
GOLDEN = FIXTURES / "golden_report.md"
GOLDEN_CSV = FIXTURES / "golden_load_points.csv"


def copy_fixture(tmp_path: Path, drop: tuple[str, ...] = ()) -> RunDir:
    run = tmp_path / "results" / "fixture-run"
    shutil.copytree(FIXTURES / "run", run)
    for name in drop:
        (run / name).unlink(missing_ok=True)
    return RunDir(run)


def render_quietly(run_dir: RunDir):
    out = io.StringIO()
    return render(run_dir, Console(file=out, width=120)), out.getvalue()


def normalized(text: str, tmp_path: Path) -> str:
    return text.replace(str(tmp_path), "<tmp>")


@pytest.fixture(scope="module")
def fixture_render(tmp_path_factory):
    """The stored run folder rendered once, for the tests that only read the output."""
    tmp_path = tmp_path_factory.mktemp("golden")
    run_dir = copy_fixture(tmp_path)
    rendered, _ = render_quietly(run_dir)
    return tmp_path, run_dir, rendered


def compare_with_golden(text: str, golden_file: Path) -> None:
    if os.environ.get("REPORT_GOLDEN_UPDATE") == "1":
        golden_file.write_text(text, encoding="utf-8")
        pytest.skip(f"{OPT_IN} (REPORT_GOLDEN_UPDATE=1): golden file regenerated: {golden_file}")
    golden = golden_file.read_text(encoding="utf-8")
    if text != golden:
        diff = difflib.unified_diff(golden.splitlines(True), text.splitlines(True), "golden", "rendered")
        diff = "".join(list(diff)[:80])
        pytest.fail(f"{golden_file.name} differs from the rendered file; if the change is intended, regenerate "
                    f"with REPORT_GOLDEN_UPDATE=1 and review it:\n{diff}")


def test_report_md_matches_golden(fixture_render):
    tmp_path, _, rendered = fixture_render
    compare_with_golden(normalized(rendered.markdown.read_text(encoding="utf-8"), tmp_path), GOLDEN)


def test_load_points_csv_matches_golden(fixture_render):
    """One row per load point of loadtest.json (every repeat, closed and open loop), beside it in the run folder."""
    _, run_dir, rendered = fixture_render
    assert rendered.load_points == run_dir.load_points
    text = rendered.load_points.read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    data = json.loads(run_dir.loadtest.read_text(encoding="utf-8"))
    points = [p for e in data["endpoints"] for p in [q for s in e["sweeps"] for q in s["points"]] + e["open_points"]]
    assert len(rows) == len(points) > 0
    assert {r["mode"] for r in rows} == {"closed", "open"}
    assert [float(r["p99_ms"]) for r in rows] == pytest.approx([p["latency_ms"]["stats"]["p99"] for p in points],
                                                               abs=5.1e-4)
    compare_with_golden(text, GOLDEN_CSV)


def test_results_json_round_trips_and_holds_what_the_report_shows(fixture_render):
    _, run_dir, rendered = fixture_render
    data = json.loads(run_dir.results.read_text(encoding="utf-8"))
    assert results.to_json_data(results.load(ReportResults, run_dir.results)) == data
    assert rendered.results.comparison and len(rendered.results.comparison) == 6
    assert rendered.results.artifacts, "the fixture's manifest should give artifact rows"


def test_missing_results_file_renders_with_reason_and_command(tmp_path):
    run_dir = copy_fixture(tmp_path, drop=("loadtest.json", "serving.json"))
    stages = [t for t in results.load(list[results.StageTiming], run_dir.stages)
              if t.stage not in ("serve", "load", "report")]
    stages.append(results.StageTiming(stage="serve", seconds=4.2, ok=False,
                                      error="ServerError: torchserve did not become ready within 120 s"))
    results.save(stages, run_dir.stages, list[results.StageTiming])
    rendered, _ = render_quietly(run_dir)
    md = rendered.markdown.read_text(encoding="utf-8")
    latency = md.split('<a id="latency"></a>')[1].split("<a id=")[0]
    assert ("`loadtest.json` is missing: stage `load` did not run: stage `serve` failed before it "
            "(ServerError: torchserve did not") in latency
    assert f"--run-id fixture-run --results-dir {run_dir.path.parent} --force --stages load report" in latency
    serving = md.split('<a id="serving"></a>')[1].split("<a id=")[0]
    assert "`serving.json` is missing: stage `serve` failed after 4.2 s" in serving
    not_run = md.split('<a id="not-run"></a>')[1]
    assert "`serving.json`" in not_run and "`loadtest.json`" in not_run
    assert {m.file for m in rendered.results.missing} >= {"serving.json", "loadtest.json"}


def test_unreadable_results_file_is_reported_not_dropped(tmp_path):
    run_dir = copy_fixture(tmp_path)
    run_dir.floor.write_text('{"run_id": "x"}\n', encoding="utf-8")  # not a FloorResults
    rendered, printed = render_quietly(run_dir)
    (missing,) = [m for m in rendered.results.missing if m.file == "floor.json"]
    assert missing.unreadable and missing.reason.startswith("ValidationError")
    assert "floor.json could not be read: ValidationError" in printed
    floor = rendered.markdown.read_text(encoding="utf-8").split('<a id="floor"></a>')[1].split("<a id=")[0]
    assert "`floor.json` could not be read: ValidationError" in floor


def test_real_run_html_loads_nothing_from_outside(fixture_render):
    """Text may quote URLs (a metrics address, the TF Serving install command); no attribute may load one."""
    _, _, rendered = fixture_render
    page = rendered.html.read_text(encoding="utf-8")
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(r.startswith(("#", "data:image/png;base64,")) for r in refs)
    assert not re.search(r"<(script|link|iframe)\b|@import|url\(", page)
