"""`deploy-compare compare RUN_A RUN_B`: do two runs agree? Per load-tested endpoint, each run's saturation
(or its lower bound) and p50 at 1 user, how far apart they are, and whether that is within the limits
(default: 10% and 5%, the limits a benchmark's back-to-back runs are held to); beside them, how far each
run's machine reference moved during its load stage (`loadtests/reference.py`), so a difference can be
weighed against the machine's own. Read from the runs' `loadtest.json` only; nothing is measured.

    deploy-compare compare results/a results/b [--saturation-limit 0.10] [--p50-limit 0.05]
                           [--json FILE] [--check]

`--check` exits 1 when an endpoint measured in both runs is outside a limit (for scripts and CI).
Differences are max/min - 1, the same measure as the sweeps' stability rules.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from core import results
from core.errors import UserError


@dataclass
class FigurePair:
    a: float | None
    b: float | None
    limit: float

    @property
    def apart(self) -> float | None:
        """max/min - 1 (None: a run lacks the figure)."""
        if not self.a or not self.b:
            return None
        return max(self.a, self.b) / min(self.a, self.b) - 1

    @property
    def agree(self) -> bool | None:
        apart = self.apart
        return None if apart is None else apart <= self.limit


@dataclass
class EndpointComparison:
    endpoint: str  # stack protocol (model) [launcher]
    saturation: FigurePair
    saturation_found: tuple[bool | None, bool | None]  # per run: a plateau/SLO was reached (False: lower bound)
    p50_1user_ms: FigurePair


@dataclass
class RunReferenceSpan:
    run: str
    low_rps: float | None
    high_rps: float | None
    spread: float | None  # max/min - 1 over the run's load stage (None: not recorded)


@dataclass
class RunComparison:
    run_a: str
    run_b: str
    saturation_limit: float
    p50_limit: float
    endpoints: list[EndpointComparison] = field(default_factory=list)
    only_in_one: list[str] = field(default_factory=list)
    references: list[RunReferenceSpan] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return all(f.agree is not False for e in self.endpoints for f in (e.saturation, e.p50_1user_ms))


def _label(endpoint: dict) -> str:
    from deploy_compare.report.sources.loadtest import launcher_of

    launcher = launcher_of(endpoint)
    return f"{endpoint.get('stack')} {endpoint.get('protocol')} ({endpoint.get('model')})" + \
        (f" [{launcher}]" if launcher else "")


def _figures(ep) -> tuple[float | None, bool | None, float | None]:
    """(saturation or its lower bound, whether it was found, p50 at 1 user): the report's figures, the 1-user
    p50 being that of the median repeat by throughput (`median_repeats`), as in the scorecard."""
    from deploy_compare.report.sources.loadtest import median_repeats

    sat = ep.saturation.rps if ep.saturation else ep.saturation_rps
    found = ep.saturation.found if ep.saturation else None
    one = next((p for p in median_repeats([p for s in ep.sweeps for p in s.points])
                if p.users == 1 and p.valid and p.latency_ms is not None), None)
    return sat, found, one.latency_ms.stats["p50"] if one is not None else None


def _load(run: Path):
    from loadtests.results import LoadTestResults

    path = run / "loadtest.json"
    if not path.is_file():
        raise UserError(f"{path} does not exist: compare needs two run folders whose load stage ran "
                        "(deploy-compare run ...)")
    return results.load(LoadTestResults, path)


def compare_runs(run_a: Path, run_b: Path, saturation_limit: float = 0.10, p50_limit: float = 0.05) -> RunComparison:
    a, b = _load(run_a), _load(run_b)
    out = RunComparison(run_a=str(run_a), run_b=str(run_b), saturation_limit=saturation_limit, p50_limit=p50_limit)
    by_b = {_label(ep.endpoint): ep for ep in b.endpoints}
    in_a = {_label(ep.endpoint) for ep in a.endpoints}
    for ep in a.endpoints:
        label, other = _label(ep.endpoint), by_b.get(_label(ep.endpoint))
        why = (f"failed in {run_a.name}" if ep.status != "ok" else f"not measured in {run_b.name}" if other is None
               else f"failed in {run_b.name}" if other.status != "ok" else None)
        if why:
            out.only_in_one.append(f"{label}: {why}")
            continue
        (sa, fa, pa), (sb, fb, pb) = _figures(ep), _figures(other)
        out.endpoints.append(EndpointComparison(endpoint=label, saturation=FigurePair(sa, sb, saturation_limit),
                                                saturation_found=(fa, fb), p50_1user_ms=FigurePair(pa, pb, p50_limit)))
    out.only_in_one += [f"{label}: not measured in {run_a.name}" for label in by_b if label not in in_a]
    for name, lt in ((run_a.name, a), (run_b.name, b)):
        rates = [s.rps for s in lt.reference.samples] if lt.reference else []
        out.references.append(RunReferenceSpan(run=name, low_rps=min(rates) if rates else None,
                                               high_rps=max(rates) if rates else None,
                                               spread=lt.reference.spread if lt.reference else None))
    return out


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a", type=Path, help="a run folder with loadtest.json")
    parser.add_argument("run_b", type=Path, help="another run folder with loadtest.json")
    parser.add_argument("--saturation-limit", type=float, default=0.10, help="max/min - 1 allowed (default 0.10)")
    parser.add_argument("--p50-limit", type=float, default=0.05, help="max/min - 1 allowed for p50 at 1 user "
                                                                      "(default 0.05)")
    parser.add_argument("--json", type=Path, default=None, help="also write the comparison as JSON here")
    parser.add_argument("--check", action="store_true", help="exit 1 when an endpoint is outside a limit")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _verdict(pair: FigurePair) -> str:
    return {True: "yes", False: "[red]NO[/red]", None: "n/a"}[pair.agree]


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    cmp = compare_runs(args.run_a.resolve(), args.run_b.resolve(), args.saturation_limit, args.p50_limit)
    a, b = args.run_a.name, args.run_b.name
    table = Table(title=f"A = {a}, B = {b}: saturation (>= : not saturated) and p50 at 1 user")
    table.add_column("endpoint", no_wrap=True)
    for col in ("sat A", "sat B", "apart", f"<= {cmp.saturation_limit:.0%}", "p50 A", "p50 B", "apart",
                f"<= {cmp.p50_limit:.0%}"):
        table.add_column(col, no_wrap=True)
    for e in cmp.endpoints:
        s, p = e.saturation, e.p50_1user_ms
        sat = [("n/a" if x is None else f"{'' if found else '>= '}{x:,.0f}/s") for x, found in
               ((s.a, e.saturation_found[0]), (s.b, e.saturation_found[1]))]
        table.add_row(e.endpoint, *sat, _pct(s.apart), _verdict(s),
                      *[("n/a" if x is None else f"{x:.3f} ms") for x in (p.a, p.b)], _pct(p.apart), _verdict(p))
    console = Console(width=max(Console().width, 140))
    console.print(table)
    for line in cmp.only_in_one:
        console.print(f"not compared: {line}")
    for r in cmp.references:
        console.print(f"machine reference during {r.run}'s load stage: " + (
            f"{r.low_rps:,.0f}-{r.high_rps:,.0f} req/s, moved {r.spread:.0%}" if r.spread is not None
            else "not recorded"))
    console.print(f"{sum(e.saturation.agree is True for e in cmp.endpoints)} of {len(cmp.endpoints)} saturations "
                  f"and {sum(e.p50_1user_ms.agree is True for e in cmp.endpoints)} of {len(cmp.endpoints)} p50s at "
                  "1 user within their limits")
    if args.json:
        results.save(cmp, args.json)
        console.print(f"written: {args.json}")
    return 1 if args.check and not cmp.agree else 0
