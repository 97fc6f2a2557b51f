"""Run folder -> `ReportResults`: every registered source loads its results file, then the rows that
combine several files (comparison table, memory) are derived.

A file that is absent or unreadable becomes a `MissingSection` naming the file, why it is missing
(from stages.json) and the command that would produce it: the report still renders and says what it
lacks. Every `NotRun` of every file is gathered, tagged with the file it came from.
"""
from __future__ import annotations

from typing import Callable

from deploy_compare import results
from deploy_compare.report import claims
from deploy_compare.report.model import MissingSection, NotRunRow, ReportResults
from deploy_compare.report.sources import SOURCES
from deploy_compare.rundir import RunDir


def stage_reason(stages: list[results.StageTiming], stage: str, filename: str) -> str:
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
    return f"deploy-compare run --profile {profile} {where} --stages {stage} report"


def collect(run_dir: RunDir, warn: Callable[[str], None]) -> ReportResults:
    """Build the aggregate from the run folder's saved results only. `warn` hears every unreadable file."""
    run_dir.require()
    res = ReportResults(run_id=run_dir.path.name, quick=True, settings=None, environment=None)
    problems: list[tuple[str, str, tuple[str, ...], str]] = []
    for filename, src in SOURCES.items():
        path = run_dir.file(filename)
        if not path.exists():
            problems.append((filename, src.stage, src.sections, ""))
            continue
        try:
            not_run = src.fill(path, res)
        except Exception as exc:  # shown in the report's section and printed: never silent
            message = f"{filename} could not be read: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            warn(message)
            problems.append((filename, src.stage, src.sections, message))
            continue
        res.not_run += [NotRunRow(source=filename, what=n.what, reason=n.reason, enable_command=n.enable_command)
                        for n in not_run]
    for filename, stage, sections, message in problems:  # stages.json is loaded by now: cite it
        reason = message or stage_reason(res.stages, stage, filename)
        res.missing += [MissingSection(section=s, file=filename, reason=reason,
                                       enable_command=enable_command(run_dir, stage, res)) for s in sections]
    res.comparison = claims.comparison(res)
    return res
