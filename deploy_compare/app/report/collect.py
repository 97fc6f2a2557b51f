"""Run folder -> `ReportResults`: every registered source loads its results file, then the rows that
combine several files (comparison table, memory) are derived.

A file that is absent or unreadable becomes a `MissingSection` naming the file, why it is missing
(from stages.json) and the command that would produce it: the report still renders and says what it
lacks. Every `NotRun` of every file is gathered, tagged with the file it came from.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from deploy_compare.app.report import claims
from deploy_compare.app.report.model import LoadPoint, MemoryRow, MissingSection, NotRunRow, ReportResults
from deploy_compare.app.report.sources import SOURCES
from deploy_compare.core import results
from deploy_compare.core.rundir import RunDir

if TYPE_CHECKING:
    from deploy_compare.serving.metrics import IntervalMeans


def stage_reason(stages: list[results.StageTiming], stage: str, filename: str) -> str:
    if stage == "run":
        return f"`deploy-compare run` writes {filename} when it creates the run folder; this folder has none"
    by_name = {t.stage: t for t in stages}
    if stage in by_name:
        t = by_name[stage]
        return (f"stage `{stage}` failed after {t.seconds:.1f} s: {t.error}" if not t.ok
                else f"stage `{stage}` ran but did not write {filename}")
    failed = [t for t in stages if not t.ok]
    if failed:
        return f"stage `{stage}` did not run: stage `{failed[0].stage}` failed before it ({failed[0].error})"
    return f"stage `{stage}` was not part of this run"


def enable_command(run_dir: RunDir, stage: str, res: ReportResults) -> str:
    where = f"--run-id {run_dir.path.name} --results-dir {run_dir.path.parent}"
    if stage == "run":
        return f"deploy-compare run {where} --force"
    profile = res.settings.profile if res.settings else "quick"
    return f"deploy-compare run --profile {profile} {where} --force --stages {stage} report"


def collect(run_dir: RunDir, warn: Callable[[str], None]) -> ReportResults:
    """Build the aggregate from the run folder's saved results only. `warn` hears every unreadable file."""
    run_dir.require()
    res = ReportResults(run_id=run_dir.path.name, single_repeat=True, settings=None, environment=None)
    problems: list[tuple[str, str, tuple[str, ...], str]] = []
    for filename, src in SOURCES.items():
        path = run_dir.file(filename)
        if not path.exists():
            problems.append((filename, src.stage, src.sections, ""))
            continue
        try:
            not_run = src.fill(path, res)
        except Exception as exc:  # shown in the report's section and printed: never silent
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            warn(f"{filename} could not be read: {message}")
            problems.append((filename, src.stage, src.sections, message))
            continue
        for n in not_run:  # a stage may repeat an earlier stage's record (e.g. parity repeats the manifest's)
            if not any((r.what, r.reason) == (n.what, n.reason) for r in res.not_run):
                res.not_run.append(NotRunRow(source=filename, what=n.what, reason=n.reason,
                                             enable_command=n.enable_command))
    for filename, stage, sections, message in problems:  # stages.json is loaded by now: cite it
        reason = message or stage_reason(res.stages, stage, filename)
        res.missing += [MissingSection(section=s, file=filename, reason=reason, unreadable=bool(message),
                                       enable_command=enable_command(run_dir, stage, res)) for s in sections]
    derive(res)
    return res


def attach_server_means(res: ReportResults) -> None:
    """Each load point gets its server's per-request means over exactly its own window: the counters sampled
    during the endpoint's load, between the first and last samples inside the point's wall-clock bounds."""
    from deploy_compare.serving.metrics import interval_means

    series: dict[tuple[str, str, str, str], list] = {}
    server: dict[tuple[str, str, str, str], str] = {}
    for w in res.server_windows:  # an endpoint measured in several windows (repeats in rotation): all its samples
        key = (w.stack, w.protocol, w.model, w.launcher)
        series.setdefault(key, []).extend(w.series)
        server[key] = w.server
    windows: dict[tuple[str, str, str, str], list[tuple[float, float]]] = {}
    for p in res.load_points:
        if p.window_unix is not None:
            windows.setdefault(p.key, []).append(p.window_unix)
    for p in res.load_points:
        if p.window_unix is None or not series.get(p.key):
            continue
        means = interval_means(sorted(series[p.key], key=lambda s: s.t), server[p.key], *p.window_unix)
        if means is None:
            means = _bracketing_means(res, p, server[p.key], windows[p.key])
        if means is not None:
            p.server, p.server_requests = dict(means.derived), means.requests


def _bracketing_means(res: ReportResults, p: LoadPoint, server: str,
                      windows: list[tuple[float, float]]) -> IntervalMeans | None:
    """A paired window is shorter than two sampling periods (quick: 0.3 s against 0.5 s), so no two samples fall
    inside it; its metrics window was scraped just before the window's command and just after its result, so
    those two samples bracket it and no other window of the endpoint. The server's means between them count the
    window's warm-up too (the same users, just before): said so beside the figures."""
    from deploy_compare.serving.metrics import interval_means

    t0, t1 = p.window_unix
    for w in res.server_windows:
        if (w.stack, w.protocol, w.model, w.launcher) != p.key or len(w.series) < 2:
            continue
        first, last = min(s.t for s in w.series), max(s.t for s in w.series)
        if not (first <= t0 and t1 <= last):
            continue
        if sum(1 for a, b in windows if a < last and b > first) != 1:  # the bracket holds other windows too
            return None
        means = interval_means(sorted(w.series, key=lambda s: s.t), server, first, last)
        if means is not None:
            period = f"{w.sample_interval_s:g} s " if w.sample_interval_s else ""
            p.server_note = (f"server counters from the scrapes just before and after this {t1 - t0:.1f} s window "
                             f"({last - first:.2f} s apart: its warm-up included; the sampler's {period}period "
                             "took no two samples inside it)")
        return means
    return None


def derive(res: ReportResults) -> None:
    """Rows that combine several results files: per-point server means, the serving tax, the scorecard,
    memory, the comparison table."""
    from deploy_compare.app.report.served import derive_scorecard
    from deploy_compare.app.report.tax import derive_tax

    attach_server_means(res)
    seen = set()
    for f in res.floor:
        key = (f.twin, f.label, f.threads)
        if f.peak_rss_bytes and key not in seen:
            seen.add(key)
            res.memory.append(MemoryRow(what=f"{f.label} ({f.twin}, {f.threads} thread)",
                                        kind="in-process, shared process" if f.shared_process else "in-process",
                                        peak_rss_bytes=f.peak_rss_bytes))
    derive_tax(res)
    derive_scorecard(res)
    res.comparison = claims.comparison(res)
