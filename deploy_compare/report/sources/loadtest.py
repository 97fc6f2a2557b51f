"""Load tests: loadtest.json (closed-loop curves, open-loop points, generator headroom, validity)."""
from __future__ import annotations

from pathlib import Path

from deploy_compare import results
from deploy_compare.report.model import ReportResults
from deploy_compare.report.sources import source


@source("loadtest.json", "serve", "latency", "curves", "openloop", "server-client")
def loadtest(path: Path, res: ReportResults) -> list[results.NotRun]:
    raise NotImplementedError("the report does not read loadtest.json yet")
