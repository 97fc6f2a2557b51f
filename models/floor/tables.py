"""The floor on the console: one table per twin and thread count (repeat 0), then the derived rows and the
measuring processes. The report renders floor.json on its own; these tables are for the person at the terminal."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deploy_compare.models.floor.schema import FloorResults

if TYPE_CHECKING:
    from rich.console import Console

TABLE_WIDTH = 150


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def floor_table(floor: FloorResults, twin: str, threads: int) -> Any:
    from rich.table import Table

    big = max(floor.settings.batch_sizes)
    table = Table(title=f"floor: {twin}, {threads} thread(s), repeat 0 ({floor.profile} profile)")
    for col in ("runtime", "variant", "load s", "first s", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "p99.9 ms", "b1 /s",
                f"b{big} /s", "RSS MB", "max|err|"):
        table.add_column(col, justify="left" if col in ("runtime", "variant") else "right")
    for p in floor.points:
        if p.spec.twin != twin or p.threads != threads or p.repeat != 0:
            continue
        name = p.spec.runtime if not p.spec.artifact else f"{p.spec.runtime} ({p.spec.artifact.split('/')[1]})"
        if not p.ok:
            table.add_row(name, p.spec.variant, "[red]failed[/]", (p.error or "")[:60], *[""] * 9)
            continue
        b1, bb = p.at(1), p.at(big)
        s = b1.latency.stats if b1 else {}
        backed = set(b1.backed_percentiles) if b1 else set()

        def pct(name: str) -> str:
            return "" if name not in s else f"{s[name]:.3f}" + ("" if name in backed else "*")

        table.add_row(name, p.spec.variant, _fmt(p.load_seconds, 3), _fmt(p.first_inference_seconds, 4),
                      *map(pct, ("p50", "p90", "p95", "p99", "p99.9")), _fmt(b1.throughput if b1 else None, 0),
                      _fmt(bb.throughput if bb else None, 0),
                      _fmt(p.peak_rss_bytes / 2**20 if p.peak_rss_bytes else None, 0),
                      "n/a" if p.parity is None else f"{p.parity.max_abs_err:.1e}")
    table.caption = "* percentile not backed by the sample count at 99% confidence"
    return table


def print_summary(floor: FloorResults, console: Console) -> None:
    from rich.console import Console
    from rich.markup import escape

    wide = Console(file=console.file, width=max(console.width, TABLE_WIDTH))  # tables stay readable in logs
    for twin in dict.fromkeys(p.spec.twin for p in floor.points):
        for threads in floor.settings.thread_counts:
            wide.print(floor_table(floor, twin, threads))
    for r in floor.graph_ratios:
        thr = "" if r.throughput_ratio is None else f", throughput at b{r.batch} x{r.throughput_ratio:.2f}"
        console.print(f"graph vs eager ({r.framework}) {r.twin} t={r.threads}: {r.eager} {r.eager_p50_ms:.3f} ms / "
                      f"{r.graph} {r.graph_p50_ms:.3f} ms = x{r.latency_ratio:.2f}{thr}")
    for s in floor.spread:
        i = s.interval
        what = s.artifact or f"{s.twin}/{s.runtime}"
        console.print(f"spread {what} t={s.threads}: p50 median {i['median']:.3f} ms, "
                      f"95% CI [{i['ci_lo']:.3f}, {i['ci_hi']:.3f}] over {len(s.p50_ms)} repeats")
    console.print(f"theano: {escape(floor.theano.theano.reason)}")
    failed = [p for p in floor.points if not p.ok]
    for proc in floor.processes:
        console.print(f"  process {proc.group} t={proc.threads} r={proc.repeat}: {proc.points} point(s), "
                      f"{proc.seconds:.1f} s, cpus {proc.pinned_cpus or 'all'}" + (" FAILED" if proc.error else ""))
    console.print(f"floor: {len(floor.points)} points in {len(floor.processes)} processes ({floor.grouping}), "
                  f"{len(failed)} failed, {floor.wall_seconds:.1f} s; saved with raw samples")
