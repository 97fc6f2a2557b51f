"""Each serving stack's maintenance status: a dated citation, never a measurement (conventions rule 17).

No run can measure whether a project is maintained. What the report and docs/servers.md say about it is
this table: per project its last release and date, its status in the project's (or a dependent project's)
own words, and the links it was checked against on `CHECKED`. Update the rows and the date together;
`tests/test_serving_catalog.py` keeps docs/servers.md in step with `markdown_table()`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

CHECKED = "2026-12-03"  # the day every row below was checked against its sources
LABEL = f"citation checked on {CHECKED}, not a measurement"


@dataclass(frozen=True)
class MaintenanceStatus:
    project: str
    role: str  # what it is to this toolkit
    last_release: str  # version and date, as the source gives it
    status: str  # in the sources' words, shortened
    sources: tuple[str, ...]  # links the row was checked against


STATUS: tuple[MaintenanceStatus, ...] = (
    MaintenanceStatus(
        project="TorchServe", role="serves every artifact here (both columns)",
        last_release="0.12.0, 2024-09 (PyPI; pytorch/serve#3318)",
        status="limited maintenance since 2025: no planned updates, bug fixes or security patches "
               "(repository marked so; pytorch/serve#3396, opened 2025-03-03, asks why)",
        sources=("https://github.com/pytorch/serve/issues/3396", "https://docs.pytorch.org/serve/",
                 "https://pypi.org/project/torchserve/0.12.0/")),
    MaintenanceStatus(
        project="KServe", role="Kubernetes serving layer that ships a TorchServe runtime",
        last_release="0.21.0, 2026-09 (PyPI)",
        status="an open pull request removes its TorchServe runtime because TorchServe is no longer actively "
               "maintained upstream (kserve/kserve#5638, opened 2026-06-05; earlier: kserve/kserve#4568)",
        sources=("https://github.com/kserve/kserve/pull/5638", "https://github.com/kserve/kserve/issues/4568")),
    MaintenanceStatus(
        project="TF Serving", role="TensorFlow's own server; not run here (no binary or image reachable)",
        last_release="2.21.0, 2026-09 (tensorflow-serving-api on PyPI); 2.22.0-rc0 pre-release, 2026-11",
        status="releases continue, following TensorFlow's",
        sources=("https://pypi.org/project/tensorflow-serving-api/2.21.0/",
                 "https://github.com/tensorflow/serving/releases/tag/2.22.0-rc0")),
    MaintenanceStatus(
        project="Ray Serve", role="framework-neutral server (part of Ray)",
        last_release="ray 2.60.0, 2026-11 (PyPI)",
        status="releases continue with Ray's",
        sources=("https://pypi.org/project/ray/2.60.0/", "https://docs.ray.io/en/latest/serve/index.html")),
)


def cite(url: str) -> str:
    """A source as the report cites it, without a live link (the report is one offline file):
    `pytorch/serve#3396` for a GitHub issue or pull request, else the address without its scheme."""
    m = re.fullmatch(r"https://github\.com/([^/]+/[^/]+)/(?:issues|pull)/(\d+)", url)
    return f"{m.group(1)}#{m.group(2)}" if m else url.split("://", 1)[-1]


def rows(links: bool = True) -> list[list[str]]:
    """The table's rows: project, role, last release, status, sources (as links, or cited without them)."""
    return [[s.project, s.role, s.last_release, s.status, " ".join(u if links else cite(u) for u in s.sources)]
            for s in STATUS]


HEADERS = ["project", "role here", "last release", "status (cited)", "sources"]


def markdown_table() -> str:
    """The table as docs/servers.md holds it."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + " --- |" * len(HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows()]
    return "\n".join(lines)
