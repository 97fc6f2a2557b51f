"""The load-mode axis: `LoadMode.run(job)` measures one endpoint's points in a locust process and
returns typed points. A mode builds a `Plan`; `loadtests.launch.run_plan` runs it in locust (its own
processes), `loadtests.analysis` turns the raw samples into statistics and validity."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from core.config import LoadSettings
from core.registry import Registry
from loadtests.analysis import to_point
from loadtests.launch import LocustTarget, run_plan
from loadtests.plan import Plan
from loadtests.results import LoadPoint

LOAD_MODES: Registry[type[LoadMode]] = Registry("load mode")


@dataclass
class LoadJob:
    """Everything a mode needs to measure one endpoint."""
    target: LocustTarget
    settings: LoadSettings
    log_dir: Path
    name: str  # used for log file names
    cpus: set[int] | None = None  # generator cores
    workers: int = 0  # locust workers (0 = one process)
    users: list[int] | None = None  # closed: explicit steps (default 1, 2, 4, ... max_users)
    rates: list[float] | None = None  # open: explicit target rates (default: fractions of saturation_rps)
    saturation_rps: float | None = None  # open: measured by the closed-loop sweep
    stop_rule: bool = True  # closed: stop by the rule (False: every step)
    connections: int = 64  # open: requests in flight at most


@dataclass
class ModeOutcome:
    points: list[LoadPoint]
    stop_reason: str
    error: str | None  # the locust side failed part-way; `points` holds what was measured before
    workers: int
    locust_version: str
    extra: dict = field(default_factory=dict)


class LoadMode(ABC):
    name: ClassVar[str]

    @abstractmethod
    def plan(self, job: LoadJob) -> Plan:
        """The plan locust runs for this mode."""

    def run(self, job: LoadJob, repeat: int = 0) -> ModeOutcome:
        plan = self.plan(job)
        raw = run_plan(plan, job.target, log_dir=job.log_dir, cpus=job.cpus, workers=job.workers,
                       name=f"{job.name}-{self.name}-r{repeat}")
        points = [to_point(p, job.settings, repeat) for p in raw.points]
        return ModeOutcome(points=points, stop_reason=raw.stop_reason, error=raw.error, workers=raw.workers,
                           locust_version=raw.locust_version)
