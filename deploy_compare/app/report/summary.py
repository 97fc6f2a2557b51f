"""The terminal summary printed at the end of the pipeline: headline figures and where the report is."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from deploy_compare.app.report import fmt
from deploy_compare.app.report.claims import cold_start_by_server, fastest_text, graph_verdict
from deploy_compare.app.report.model import ReportResults
from deploy_compare.app.report.served import saturation_text


def headline_rows(res: ReportResults) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    fp32 = [a for a in res.artifacts if a.variant == "fp32" and a.parity != "not checked"]
    if fp32:
        rows.append(("fp32 artifacts passing parity", f"{sum(a.parity == 'pass' for a in fp32)}/{len(fp32)}"))
    for twin in sorted({f.twin for f in res.floor}):
        pts = [f for f in res.floor
               if f.twin == twin and f.batch == 1 and f.variant == "fp32" and f.latency is not None]
        if pts:
            best = min(pts, key=lambda f: f.latency.p50)
            rows.append((f"lowest in-process p50, {twin} batch 1", f"{best.runtime} {fmt.ms(best.latency.p50)} p50 ("
                         f"{fastest_text(res.floor_comparisons, best.point + ' (', twin)})"))
    pairs: dict[tuple[str, str, str], list[str]] = {}
    for g in res.graph_ratios:
        pairs.setdefault((g.framework, g.eager, g.graph), []).append(
            f"{g.twin} {g.latency_ratio:.2f}x ({graph_verdict(g)})")
    for (framework, eager, graph), ratios in pairs.items():
        rows.append((f"eager/graph p50, {framework} ({eager} / {graph})", ", ".join(ratios)))
    for server, text in cold_start_by_server(res).items():
        rows.append((f"cold start {server}", text))
    for r in res.scorecard:
        if r.tax_ms is not None:
            launcher = f", {r.launcher}" if len(res.launchers) > 1 else ""
            rows.append((f"serving tax {r.stack} {r.protocol} ({r.model}{launcher})",
                         f"{fmt.ms(r.tax_ms)} at 1 user (served p50 {fmt.ms(r.served_p50_ms)}, in-process "
                         f"{fmt.ms(r.floor_p50_ms)})"))
    for sat in res.saturations:
        launcher = f", {sat.launcher}" if len(res.launchers) > 1 else ""
        rows.append((f"saturation {sat.stack} {sat.protocol} ({sat.model}{launcher})", saturation_text(sat)))
    for h in res.headrooms:
        rows.append((f"generator headroom {h.protocol or ''}".rstrip(),
                     f"{h.ratio:.1f}x the fastest endpoint" if h.ratio is not None else fmt.NA))
    invalid = sum(not p.valid for p in res.load_points)
    if res.load_points:
        rows.append(("load points valid", f"{len(res.load_points) - invalid}/{len(res.load_points)}"))
    by_reason: dict[str, list[str]] = {}
    for n in res.not_run:
        by_reason.setdefault(n.reason, []).append(n.what)
    for reason, whats in by_reason.items():
        label = whats[0] if len(whats) == 1 else f"{len(whats)} items ({whats[0]}, ...)"
        rows.append((f"not run: {label}", fmt.short(reason)))
    for m in {m.file: m for m in res.missing}.values():
        rows.append((f"missing: {m.file}", fmt.short(m.reason)))
    return rows


def print_summary(console: Console, res: ReportResults, report: Path) -> None:
    profile = res.settings.profile if res.settings else "unknown"
    table = Table(title=f"deploy-compare run {res.run_id} ({profile} profile"
                  + (", single repeat)" if res.single_repeat else ")"),
                  show_lines=False)
    table.add_column("headline", style="bold")
    table.add_column("figure")
    for name, value in headline_rows(res):
        table.add_row(name, value)
    console.print(table)
    console.print(f"report: [bold]{report}[/]")
