"""Servers: serving.json (cold start, served parity, server metrics, servers that could not run)."""
from __future__ import annotations

from pathlib import Path

from deploy_compare import results
from deploy_compare.report.model import ReportResults
from deploy_compare.report.sources import source


@source("serving.json", "serve", "serving", "server-client")
def serving(path: Path, res: ReportResults) -> list[results.NotRun]:
    raise NotImplementedError("the report does not read serving.json yet")
