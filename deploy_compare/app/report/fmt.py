"""Number formatting shared by the tables, the comparison cells and the terminal summary."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from deploy_compare.app.report.model import LatencyStats

NA = "–"
UNBACKED = "*"
UNBACKED_NOTE = ("`*` = percentile not backed at 99% confidence by this point's sample count "
                 "(needs >= 44 samples for p90, 90 for p95, 459 for p99, 4603 for p99.9); `–` for p95 = "
                 "not recorded (a results file written before p95 was)")


def na_if_none(render: Callable[[Any], str]) -> Callable[[Any], str]:
    """`render(value)`, or the n/a mark when the value is None or NaN (nothing measured)."""
    @functools.wraps(render)
    def wrapper(value: Any) -> str:
        return NA if value is None or value != value else render(value)

    return wrapper


def num(value: float | None, digits: int = 3) -> str:
    if value is None or value != value:
        return NA
    if value == 0:
        return "0"
    # values that round up to 10**digits (999.7 -> "1e+03" in %g) take the plain form too
    return f"{value:,.0f}" if abs(value) >= 10 ** digits - 0.5 else f"{value:.{digits}g}"


ms = na_if_none(lambda v: f"{num(v)} ms")
seconds = na_if_none(lambda v: f"{num(v)} s")
rate = na_if_none(lambda v: f"{num(v)}/s")
pct = na_if_none(lambda v: f"{100 * v:.4g}%")  # a fraction shown as percent
sci = na_if_none(lambda v: f"{v:.1e}")


@na_if_none
def size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes} B"


def users(n: int) -> str:
    return f"{n} user" if n == 1 else f"{n} users"


def short(text: str, limit: int = 90) -> str:
    """The first sentence of a reason, cut at `limit` characters (the report shows it whole elsewhere)."""
    first = text.split(". ")[0]
    if len(first) > limit:
        first = first[:limit - 1] + "…"
    return first + "`" if first.count("`") % 2 else first  # never leave a code span open


def span(values: list[float | None], unit: str) -> str:
    """One value, or the range "lo-hi" of several, with the unit once."""
    present = [v for v in values if v is not None]
    if not present:
        return NA
    lo, hi = num(min(present)), num(max(present))
    return f"{lo} {unit}" if lo == hi else f"{lo}-{hi} {unit}"


def percentile(stats: LatencyStats | None, name: str) -> str:
    """A latency percentile in ms, starred when the sample count cannot back it."""
    if stats is None:
        return NA
    value = {"p50": stats.p50, "p90": stats.p90, "p95": stats.p95, "p99": stats.p99, "p99.9": stats.p999}[name]
    if value is None:
        return NA
    return num(value) + ("" if name in stats.backed else UNBACKED)
