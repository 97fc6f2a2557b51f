"""Report sources: one per results file of the run folder, registered in pipeline order.

A `Source` loads its file with the dataclass of the stage that wrote it (`deploy_compare.core.results.load`),
flattens it into the report's rows (`ReportResults`) and returns the file's `NotRun` records. Stage
modules are imported lazily inside each fill function, so rendering a report never imports TensorFlow
or PyTorch.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy_compare.app.report.model import ReportResults
from deploy_compare.core import results
from deploy_compare.core.registry import Registry

Fill = Callable[[Path, ReportResults], list[results.NotRun]]


@dataclass(frozen=True)
class Source:
    filename: str  # in the run folder
    stage: str  # pipeline stage that writes it ("run" = the run command itself)
    sections: tuple[str, ...]  # report sections it feeds
    fill: Fill  # loads the file with its dataclass, fills the aggregate, returns the file's NotRun records


SOURCES: Registry[Source] = Registry("report source")


def source(filename: str, stage: str, *sections: str) -> Callable[[Fill], Fill]:
    def decorator(fill: Fill) -> Fill:
        SOURCES.register(filename)(Source(filename, stage, sections, fill))
        return fill

    return decorator


# registration order = pipeline order (later sources read rows earlier ones filled, e.g. floor <- artifacts);
# one import per line so that no import sorter can reorder them
# isort: off
from deploy_compare.app.report.sources import core  # noqa: E402,F401
from deploy_compare.app.report.sources import spine  # noqa: E402,F401
from deploy_compare.app.report.sources import floor  # noqa: E402,F401
from deploy_compare.app.report.sources import serving  # noqa: E402,F401
from deploy_compare.app.report.sources import loadtest  # noqa: E402,F401
# isort: on
