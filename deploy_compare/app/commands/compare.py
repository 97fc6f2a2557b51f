"""`deploy-compare compare RUN_A RUN_B`: do two runs agree? Per load-tested endpoint, each run's saturation
(or its lower bound) and p50 at 1 user, how far apart they are, and whether that is within the limits
(default: 10% and 5%, the limits a benchmark's back-to-back runs are held to); beside them, how far each
run's machine reference moved during its load stage (`loadtests/reference.py`), so a difference can be
weighed against the machine's own. Then the within-run ratios (paired rounds, `loadtests/paired.py`) both
runs measured: each run's ratio with its 95% interval, whether the intervals overlap, and whether a ranking
one run states at 99% is reversed in the other. Read from the runs' `loadtest.json` only; nothing is measured.

    deploy-compare compare results/a results/b [--saturation-limit 0.10] [--p50-limit 0.05]
                           [--json FILE] [--check] [--ratios-only]

`--check` exits 1 when anything does not agree: an absolute figure outside its limit, a within-run ratio
whose 95% intervals do not overlap or whose 99% ranking is reversed, and every `problem`: an endpoint that
failed (or is missing) in either run, a figure one run lacks, a found saturation against a lower bound (not
alike), a different profile or idle policy. `--ratios-only` leaves the absolute limits out of the verdict
(they are still shown): on a machine that drifts, the within-run ratios are what a run claims to repeat.
Differences are max/min - 1, the same measure as the sweeps' stability rules.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from deploy_compare.core import results
from deploy_compare.core.errors import UserError


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
class RatioComparison:
    """One within-run comparison (A / B, a figure at a load) as each run measured it in paired rounds."""
    what: str  # "A / B: p50 at 1 users"
    ratio_a: float
    ratio_b: float
    ci95_a: tuple[float | None, float | None]
    ci95_b: tuple[float | None, float | None]
    winner_a: str | None  # the better endpoint at 99% in run A (None: no difference found)
    winner_b: str | None

    @property
    def overlap(self) -> bool:
        """Whether the two runs' 95% intervals overlap (an unbounded interval overlaps everything)."""
        (la, ha), (lb, hb) = self.ci95_a, self.ci95_b
        if None in (la, ha, lb, hb):
            return True
        return max(la, lb) <= min(ha, hb)  # type: ignore[type-var]

    @property
    def reversed(self) -> bool:
        return self.winner_a is not None and self.winner_b is not None and self.winner_a != self.winner_b


@dataclass
class RunComparison:
    run_a: str
    run_b: str
    saturation_limit: float
    p50_limit: float
    endpoints: list[EndpointComparison] = field(default_factory=list)
    only_in_one: list[str] = field(default_factory=list)
    references: list[RunReferenceSpan] = field(default_factory=list)
    ratios: list[RatioComparison] = field(default_factory=list)
    # what makes the runs not comparable, or a figure not compared: each fails `--check`
    problems: list[str] = field(default_factory=list)

    @property
    def absolutes_agree(self) -> bool:
        return all(f.agree is not False for e in self.endpoints for f in (e.saturation, e.p50_1user_ms))

    @property
    def ratios_agree(self) -> bool:
        return all(r.overlap and not r.reversed for r in self.ratios)

    @property
    def agree(self) -> bool:
        return not self.problems and self.absolutes_agree and self.ratios_agree


def _label(endpoint: dict) -> str:
    from deploy_compare.app.report.sources.loadtest import launcher_of

    launcher = launcher_of(endpoint)
    return f"{endpoint.get('stack')} {endpoint.get('protocol')} ({endpoint.get('model')})" + \
        (f" [{launcher}]" if launcher else "")


def _figures(ep) -> tuple[float | None, bool | None, float | None]:
    """(saturation or its lower bound, whether it was found, p50 at 1 user): the report's figures, the 1-user
    p50 being that of the median repeat by throughput (`median_repeats`), as in the scorecard."""
    from deploy_compare.app.report.sources.loadtest import median_repeats

    sat = ep.saturation.rps if ep.saturation else ep.saturation_rps
    found = ep.saturation.found if ep.saturation else None
    one = next((p for p in median_repeats([p for s in ep.sweeps for p in s.points])
                if p.users == 1 and p.valid and p.latency_ms is not None), None)
    return sat, found, one.latency_ms.stats["p50"] if one is not None else None


def _load(run: Path):
    from deploy_compare.loadtests.results import LoadTestResults

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
    if a.profile != b.profile:
        out.problems.append(f"different profiles: {run_a.name} {a.profile}, {run_b.name} {b.profile}")
    pa_, pb_ = (lt.cpu_idle.policy if lt.cpu_idle else "not recorded" for lt in (a, b))
    if pa_ != pb_:
        out.problems.append(f"different idle policies: {run_a.name} {pa_}, {run_b.name} {pb_}")
    for ep in a.endpoints:
        label, other = _label(ep.endpoint), by_b.get(_label(ep.endpoint))
        why = (f"failed in {run_a.name}" if ep.status != "ok" else f"not measured in {run_b.name}" if other is None
               else f"failed in {run_b.name}" if other.status != "ok" else None)
        if why:
            out.only_in_one.append(f"{label}: {why}")
            continue
        (sa, fa, pa), (sb, fb, pb) = _figures(ep), _figures(other)
        sat = FigurePair(sa, sb, saturation_limit)
        if fa is not None and fb is not None and fa != fb:  # a lower bound is not a found saturation
            out.problems.append(f"{label}: saturation found in {run_a.name if fa else run_b.name} but only a lower "
                                f"bound in {run_b.name if fa else run_a.name}: not alike, not compared")
            sat = FigurePair(None, None, saturation_limit)
        for what, x, y in (("saturation", sa, sb), ("p50 at 1 user", pa, pb)):
            for run, v in ((run_a.name, x), (run_b.name, y)):
                if v is None:
                    out.problems.append(f"{label}: no {what} in {run}: a missing figure is not agreement")
        out.endpoints.append(EndpointComparison(endpoint=label, saturation=sat, saturation_found=(fa, fb),
                                                p50_1user_ms=FigurePair(pa, pb, p50_limit)))
    out.only_in_one += [f"{label}: not measured in {run_a.name}" for label in by_b if label not in in_a]
    out.only_in_one += [f"{_label(ep.endpoint)}: failed in {run_b.name}" for ep in b.endpoints
                        if _label(ep.endpoint) not in in_a and ep.status != "ok"]
    out.problems += [f"not compared: {line}" for line in out.only_in_one]
    out.ratios = _ratios(a.comparisons, b.comparisons)
    for name, lt in ((run_a.name, a), (run_b.name, b)):
        rates = [s.rps for s in lt.reference.samples] if lt.reference else []
        out.references.append(RunReferenceSpan(run=name, low_rps=min(rates) if rates else None,
                                               high_rps=max(rates) if rates else None,
                                               spread=lt.reference.spread if lt.reference else None))
    return out


def _ratios(a: list, b: list) -> list[RatioComparison]:
    """The within-run comparisons both runs stored (matched either way round)."""
    out = []
    for ra in a:
        rb = next((c if c.a == ra.a else c.flipped() for c in b
                   if (c.metric, c.load) == (ra.metric, ra.load) and {c.a, c.b} == {ra.a, ra.b}), None)
        if rb is None:
            continue
        out.append(RatioComparison(what=f"{ra.a} / {ra.b}: {ra.metric.split('_')[0]} at {ra.load}", ratio_a=ra.ratio,
                                   ratio_b=rb.ratio, ci95_a=(ra.ci95_lo, ra.ci95_hi), ci95_b=(rb.ci95_lo, rb.ci95_hi),
                                   winner_a=ra.winner(), winner_b=rb.winner()))
    return out


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a", type=Path, help="a run folder with loadtest.json")
    parser.add_argument("run_b", type=Path, help="another run folder with loadtest.json")
    parser.add_argument("--saturation-limit", type=float, default=0.10, help="max/min - 1 allowed (default 0.10)")
    parser.add_argument("--p50-limit", type=float, default=0.05, help="max/min - 1 allowed for p50 at 1 user "
                                                                      "(default 0.05)")
    parser.add_argument("--json", type=Path, default=None, help="also write the comparison as JSON here")
    parser.add_argument("--check", action="store_true", help="exit 1 when anything does not agree (see the doc)")
    parser.add_argument("--ratios-only", action="store_true",
                        help="with --check: judge the within-run ratios and the problems, not the absolute limits")


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
    if cmp.ratios:
        rt = Table(title="within-run ratios (paired rounds): median of rounds [95% interval]; 99% ranking")
        for col in ("A / B: figure", f"run {a}", f"run {b}", "95% overlap", "ranking at 99%"):
            rt.add_column(col)
        for r in cmp.ratios:
            def iv(ratio: float, ci: tuple[float | None, float | None]) -> str:
                return f"{ratio:.3f} [" + (f"{ci[0]:.3f}, {ci[1]:.3f}]" if None not in ci else "unbounded]")
            rank = ("[red]REVERSED[/red]: " if r.reversed else "") + f"{r.winner_a or 'none'} / {r.winner_b or 'none'}"
            rt.add_row(r.what, iv(r.ratio_a, r.ci95_a), iv(r.ratio_b, r.ci95_b),
                       "yes" if r.overlap else "[red]NO[/red]", rank)
        console.print(rt)
        console.print(f"{sum(r.overlap for r in cmp.ratios)} of {len(cmp.ratios)} within-run ratios' 95% intervals "
                      f"overlap; {sum(r.reversed for r in cmp.ratios)} ranking(s) stated at 99% reversed")
    else:
        console.print("no within-run ratio in both runs (a run without paired rounds states none)")
    for line in cmp.problems:
        console.print(f"[red]problem[/red]: {line}")
    if args.json:
        results.save(cmp, args.json)
        console.print(f"written: {args.json}")
    ok = not cmp.problems and cmp.ratios_agree and (args.ratios_only or cmp.absolutes_agree)
    return 1 if args.check and not ok else 0
