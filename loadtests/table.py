"""`load_points.csv`: every measured load point of a `LoadTestResults`, one row each, for a spreadsheet or pandas.

    write_csv(results, path)   # the load stage beside loadtest.json, the report stage from the saved file

One row per point as measured: every repeat of every closed-loop step and every open-loop point of every
endpoint, in the order of loadtest.json (the null endpoint's headroom sweep is not a result and is left out).
Latencies in ms from our raw samples (open loop: from the scheduled send time); an empty cell is a figure the
point does not have (no successful request, or p95 in a file written before p95 was recorded). Invalid points
are kept with `valid` = false and their reasons: filter on `valid` before using a figure.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from deploy_compare.core.results import atomic_write_text
from deploy_compare.loadtests.results import EndpointLoad, LoadTestResults, MeasuredPoint

PERCENTILE_COLUMNS = {"p50_ms": "p50", "p90_ms": "p90", "p95_ms": "p95", "p99_ms": "p99", "p99_9_ms": "p99.9"}
COLUMNS = ("endpoint", "model", "launcher", "mode", "repeat", "users", "target_rate_rps", "count", "errors",
           "error_rate", "throughput_rps", *PERCENTILE_COLUMNS, "valid", "reasons")


def _num(value: float | None, digits: int = 3) -> str:
    return "" if value is None or value != value else f"{value:.{digits}f}"


def _row(endpoint: EndpointLoad, p: MeasuredPoint) -> dict[str, str]:
    d = endpoint.endpoint
    stats = p.latency_ms.stats if p.latency_ms else {}
    return {
        "endpoint": f"{d.get('stack', '?')} {d.get('protocol', '?')}", "model": str(d.get("model", "")),
        "launcher": str(d.get("launcher") or ""), "mode": p.mode, "repeat": str(p.repeat),
        "users": "" if p.users is None else str(p.users), "target_rate_rps": _num(p.target_rate),
        "count": str(p.count), "errors": str(sum(p.errors.values())), "error_rate": _num(p.error_rate, 6),
        "throughput_rps": _num(p.throughput_rps),
        **{column: _num(stats.get(name)) for column, name in PERCENTILE_COLUMNS.items()},
        "valid": "true" if p.valid and p.latency_ms is not None else "false",
        "reasons": "; ".join(p.invalid_reasons or ([] if p.latency_ms else ["no successful request in the window"])),
    }


def rows(results: LoadTestResults) -> Iterator[dict[str, str]]:
    for endpoint in results.endpoints:
        for point in [p for sweep in endpoint.sweeps for p in sweep.points] + list(endpoint.open_points):
            yield _row(endpoint, point)


def to_csv(results: LoadTestResults) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(results))
    return out.getvalue()


def write_csv(results: LoadTestResults, path: Path) -> Path:
    atomic_write_text(path, to_csv(results))
    return path
