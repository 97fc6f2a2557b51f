"""The report: a run folder's saved results -> results.json, report.md, report.html, plots/.

- pipeline stage `report`: `run_stage(ctx)` renders the run and prints the terminal summary;
- CLI: `deploy-compare report RUN_DIR` re-renders any run folder from its saved results alone. A run
  folder that already holds a report is not changed: the re-render goes to `RUN_DIR/report-<UTC time>/`.

Flow: `collect` loads every stage's results file with its dataclass into one `ReportResults`, which is
saved as results.json and loaded back; plots, report.md and report.html are rendered from that
loaded aggregate only (`sections` builds one document, `document` renders it twice). Beside them,
load_points.csv (one row per load point) is written from the saved loadtest.json, as the load stage writes it.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from deploy_compare.app.report.model import ReportResults
from deploy_compare.core import results
from deploy_compare.core.rundir import RunDir


@dataclass(frozen=True)
class Rendered:
    results: ReportResults
    markdown: Path
    html: Path
    load_points: Path | None = None  # None: no readable loadtest.json (the report says why)


def render_results(res: ReportResults, run_dir: RunDir) -> tuple[Path, Path]:
    """Plots, report.md and report.html from an aggregate (no stage file is read here)."""
    from deploy_compare.app.report import document, plots, sections, share  # noqa: F401  (share: its section)

    figures = plots.draw_all(res, run_dir.plots)
    doc = sections.build_document(res, figures)
    md, page = run_dir.file("report.md"), run_dir.file("report.html")
    results.atomic_write_text(md, document.to_markdown(doc))
    results.atomic_write_text(page, document.to_html(doc, run_dir.path))
    return md, page


def render(run_dir: RunDir, console: Console, out: RunDir | None = None) -> Rendered:
    """Collect the run's saved results into results.json, then render the report from it (into `out`,
    default the run folder itself)."""
    from deploy_compare.app.report.collect import collect

    out = out or run_dir
    res = collect(run_dir, warn=lambda message: console.print(f"[yellow]report: {message}[/]"))
    results.save(res, out.results)
    saved = results.load(ReportResults, out.results)
    md, page = render_results(saved, out)
    return Rendered(results=saved, markdown=md, html=page, load_points=write_load_points(run_dir, saved, out))


def write_load_points(run_dir: RunDir, res: ReportResults, out: RunDir) -> Path | None:
    """load_points.csv from the saved loadtest.json (the same file the load stage writes beside it; older run
    folders get it here); None when loadtest.json is missing or unreadable (`res.missing` says why)."""
    from deploy_compare.loadtests.results import LoadTestResults
    from deploy_compare.loadtests.table import write_csv

    if any(m.file == run_dir.loadtest.name for m in res.missing) or not run_dir.loadtest.exists():
        return None
    return write_csv(results.load(LoadTestResults, run_dir.loadtest), out.load_points)


def run_stage(ctx) -> None:
    """Pipeline stage `report`: render, then print the headline figures and the report path."""
    from deploy_compare.app.report.summary import print_summary

    rendered = render(ctx.run_dir, ctx.console)
    print_summary(ctx.console, rendered.results, rendered.html)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder, e.g. results/<run-id>")
    parser.add_argument("--quiet", action="store_true", help="do not print the summary table")


def _output_folder(run_dir: RunDir) -> RunDir:
    """The run folder itself for its first report; a new `report-<UTC time>/` when it already holds one
    (a finished run is never changed by a later command)."""
    from deploy_compare.core.rundir import session_folder

    rendered = (run_dir.results, run_dir.file("report.md"), run_dir.file("report.html"), run_dir.plots)
    return RunDir(session_folder(run_dir, "report")) if any(p.exists() for p in rendered) else run_dir


def main(args: argparse.Namespace) -> int:
    from deploy_compare.app.report.summary import print_summary
    from deploy_compare.core.errors import UserError

    run_dir = RunDir(args.run_dir.resolve())
    if not run_dir.path.is_dir():
        raise UserError(f"run folder {run_dir.path} does not exist; pass a folder written by `deploy-compare run`")
    console = Console(stderr=True)
    rendered = render(run_dir, console, out=_output_folder(run_dir))
    if not args.quiet:
        print_summary(console, rendered.results, rendered.html)
    else:
        console.print(f"report: {rendered.html}")
    return 0
