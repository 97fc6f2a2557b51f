"""The report's renderers on a hand-made aggregate with every section filled (tests/report_samples.py):
self-contained HTML, invalid points marked, unbacked percentiles starred, the CLI and the pipeline stage,
and a headless-Chromium screenshot (marked `browser`)."""
from __future__ import annotations

import io
import os
import re
import shutil
import subprocess

import pytest
from rich.console import Console

from deploy_compare.app import cli
from deploy_compare.app.report import ReportResults, fmt, render_results
from deploy_compare.core import results
from deploy_compare.core.rundir import RunDir
from tests.report_samples import full_results
from tests.test_report_golden import copy_fixture, render_quietly


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    run_dir = RunDir(tmp_path_factory.mktemp("report") / "synthetic")
    run_dir.path.mkdir()
    res = full_results()
    md, page = render_results(res, run_dir)
    return run_dir, res, md.read_text(encoding="utf-8"), page.read_text(encoding="utf-8")


def test_html_is_one_self_contained_file(rendered):
    run_dir, _, _, page = rendered
    assert not re.search(r"https?://", page), "report.html must not reference any external URL"
    assert not re.search(r"<(script|link|iframe)\b|@import|url\(", page)
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == len(list(run_dir.plots.glob("*.png"))) >= 5
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(h.startswith("#") for h in hrefs), "links may only point inside the report"
    anchors = set(re.findall(r'<section id="([^"]+)"', page))
    assert {h[1:] for h in hrefs} <= anchors, "every link must land on a section"


def test_invalid_points_are_marked_never_results(rendered):
    _, res, md, page = rendered
    invalid = [p for p in res.load_points if not p.valid]
    assert len(re.findall(r'<tr class="invalid">', page)) >= len(invalid) + 1  # + the failed artifact
    assert md.count("INVALID") >= len(invalid)
    assert "generator CPU 97% > 90%" in md and "4% of sends > 1 ms late" in md
    assert "Open-loop sending threads scheduled as: SCHED_FIFO 1." in md  # a setting that changes lateness
    # the saturation figure ignores the invalid 16-user point (650 req/s)
    assert "saturates at 720 req/s (8 users)" in md


def test_quick_profile_is_labelled_and_unbacked_percentiles_starred(rendered):
    _, _, md, _ = rendered
    assert "**quick profile**" in md
    assert "not backed at 99% confidence" in md
    row = next(line for line in md.splitlines()
               if line.startswith("| torchserve/torchscript rest (native) | mlp | closed | 1 user |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    p50, p95, p99, p999 = cells[5], cells[7], cells[8], cells[9]  # n=400 backs p95, not p99 and p99.9
    assert not p50.endswith("*") and not p95.endswith("*") and p95 != fmt.NA
    assert p99.endswith("*") and p999.endswith("*")


def test_repeats_show_their_interval(rendered):
    _, _, md, _ = rendered
    assert "3 repeats: req/s 450 [405, 495]; p99 ms 6.3 [5.25, 7.35]" in md
    assert "0.031 [0.028, 0.034] (3x)" in md


def test_comparison_cells_cite_figures_and_link_sections(rendered):
    _, res, md, _ = rendered
    deployment = next(r for r in res.comparison if r.feature == "Deployment").cells
    assert any("SavedModel" in line for line in deployment["TensorFlow"].measured)
    assert any("TF Serving" in line and "not run here" in line for line in deployment["TensorFlow"].measured)
    assert any("TorchServe" in line for line in deployment["PyTorch"].measured)
    assert deployment["Theano"].measured[0].startswith("[none](#floor)")
    ease = next(r for r in res.comparison if r.feature == "Ease of use").cells
    assert all(c.status == "not measured" and not c.measured for c in ease.values())
    assert "claimed: intuitive and Pythonic<br>not measured" in md


def test_results_json_round_trip(tmp_path):
    res = full_results()
    path = results.save(res, tmp_path / "results.json")
    assert results.load(ReportResults, path) == res


def test_cli_renders_a_run_folder_and_refuses_a_missing_one(tmp_path, capsys):
    run_dir = copy_fixture(tmp_path)
    assert cli.main(["report", str(run_dir.path), "--quiet"]) == 0
    assert run_dir.file("report.html").exists() and run_dir.results.exists()
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_pipeline_stage_prints_the_summary(tmp_path):
    from deploy_compare.app.report import run_stage
    from deploy_compare.core.config import QUICK, RunConfig
    from deploy_compare.core.context import RunContext

    run_dir = copy_fixture(tmp_path)
    out = io.StringIO()
    ctx = RunContext(config=RunConfig(profile=QUICK, run_id=run_dir.path.name, results_root=run_dir.path.parent),
                     run_dir=run_dir, console=Console(file=out, width=160))
    run_stage(ctx)
    text = out.getvalue()
    assert "headline" in text and "report: " in text and str(run_dir.file("report.html")) in text.replace("\n", "")


@pytest.mark.browser
def test_report_opens_in_headless_chromium(rendered, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (no chromium on PATH); `apt-get install -y chromium` to run")
    run_dir, _, _, _ = rendered
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1400,4000", f"--screenshot={shot}", run_dir.file("report.html").as_uri()],
        capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, f"chromium failed: {proc.stderr[-2000:]}"
    assert shot.exists() and shot.stat().st_size > 20_000, "screenshot missing or blank"
    if os.environ.get("REPORT_SCREENSHOT"):  # keep it for a human to look at
        shutil.copyfile(shot, os.environ["REPORT_SCREENSHOT"])


def test_load_rows_are_the_median_repeat_of_each_level():
    from types import SimpleNamespace as P

    from deploy_compare.app.report.sources.loadtest import median_repeats

    def lat(p99):
        return P(stats={"p99": p99})

    closed = [P(mode="closed", load="1 users", throughput_rps=t, repeat=r, latency_ms=lat(1.0))
              for r, t in enumerate([500.0, 1300.0, 1100.0])]
    opened = [P(mode="open", load="900 req/s", throughput_rps=900.0, repeat=r, latency_ms=lat(v))
              for r, v in enumerate([5.0, 400.0, 20.0])]
    rows = median_repeats(closed + opened)
    assert [(p.mode, p.repeat) for p in rows] == [("closed", 2), ("open", 2)]  # 1,100 req/s; p99 20 ms


def test_numbers_never_render_in_exponent_form_near_a_thousand():
    from deploy_compare.app.report import fmt

    assert fmt.rate(999.7) == "1,000/s" and fmt.rate(999.4) == "999/s" and fmt.rate(12345.6) == "12,346/s"


@pytest.mark.parametrize("tried", ["not tried", "failed", "succeeded"])
def test_theano_cells_say_what_the_stored_attempt_did(tmp_path, tried):
    """The comparison table's Theano cell and the floor section's Theano paragraph come from floor.json's Theano
    record: a real attempt whose import fails here (theano is not installed in this interpreter), one whose
    import step succeeds (a stand-in module), or none (not tried)."""
    import dataclasses
    import sys

    from deploy_compare.core.config import QUICK
    from deploy_compare.models.floor import FloorResults, theano

    steps = {"failed": lambda venv: [theano.Step("import", (sys.executable, "-c", "import theano"))],
             "succeeded": lambda venv: [theano.Step("import", (sys.executable, "-c", "import json"))]}
    attempt = theano.attempt(QUICK.floor, tmp_path / "logs", steps[tried]) if tried in steps else None
    run_dir = copy_fixture(tmp_path)
    floor = results.load(FloorResults, run_dir.file("floor.json"))
    floor.theano = dataclasses.replace(floor.theano, attempt=attempt,
                                       theano=theano.not_run(QUICK.floor, "quick", attempt))
    results.save(floor, run_dir.file("floor.json"))
    md = render_quietly(run_dir)[0].markdown.read_text(encoding="utf-8")
    expected = {"not tried": "Theano itself: not tried in this run (FloorSettings.try_theano is off)",
                "failed": "Theano itself: tried and failed: `-c import theano` exited 1 in ",
                "succeeded": "Theano itself: imports in a throwaway venv (versions unknown), but no runtime here "
                             "measures it"}[tried]
    table = next(line for line in md.splitlines() if line.startswith("| **Deployment** |"))
    assert expected in table and "does not run here" not in md
    assert f"**Theano row.** {expected}" in md
    if tried == "failed":  # the error this run saw, not a remembered one
        assert "ModuleNotFoundError: No module named 'theano'" in table
