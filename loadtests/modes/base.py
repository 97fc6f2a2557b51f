"""The load-mode axis. A mode owns both halves of its behaviour:

- planning, in the orchestrator: `plan(job)` builds the `Plan` locust runs, `timeout(plan)` bounds its
  wall time, `measure(job, result, check)` runs its repeats for one endpoint and stores the points;
- driving, inside locust: `drive(controller)` runs the plan's steps (appending `controller.points`),
  `drive_slice(...)` is a worker's share of one step in a distributed run (modes that split steps).

`run(job)` is one plan in locust processes (`deploy_compare.loadtests.launch.run_plan`) with its raw samples turned
into typed points (`deploy_compare.loadtests.analysis`). Modes are registered by name in `LOAD_MODES`; the locust side
finds a plan's mode there too (`plan.mode`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from deploy_compare.core.config import LoadSettings
from deploy_compare.core.kinds import LoadModeKind
from deploy_compare.core.registry import Registry
from deploy_compare.loadtests.analysis import to_point
from deploy_compare.loadtests.launch import LocustTarget, run_plan
from deploy_compare.loadtests.plan import Plan, RawPart, RawPoint
from deploy_compare.loadtests.results import EndpointLoad, MeasuredPoint

if TYPE_CHECKING:
    from deploy_compare.loadtests.locust.controller import Controller

LOAD_MODES: Registry[type[LoadMode]] = Registry("load mode")

# check(what, locust_error) -> go on? (False: the endpoint failed, recorded in its result)
Check = Callable[[str, "str | None"], bool]


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
    stable_windows: int = 0  # closed: stop once this many steps in a row agree (server warm-up; 0 = off)
    stable_tolerance: float = 0.10
    connections: int = 64  # open: requests in flight at most
    server_pids: list[int] = field(default_factory=list)  # the server's processes (its JIT threads are watched)


@dataclass
class ModeOutcome:
    points: list[MeasuredPoint]
    stop_reason: str
    error: str | None  # the locust side failed part-way; `points` holds what was measured before
    workers: int
    locust_version: str


class LoadMode(ABC):
    name: ClassVar[LoadModeKind]

    # --- the orchestrator's half
    @abstractmethod
    def plan(self, job: LoadJob) -> Plan:
        """The plan locust runs for this mode."""

    @abstractmethod
    def timeout(self, plan: Plan) -> float:
        """A generous upper bound of the plan's wall time in locust (every wait inside is bounded too)."""

    @abstractmethod
    def measure(self, job: LoadJob, result: EndpointLoad, check: Check) -> bool:
        """This mode's repeats for one endpoint, stored in `result`; False when `check` stopped the endpoint."""

    def run(self, job: LoadJob, repeat: int = 0) -> ModeOutcome:
        plan = self.plan(job)
        raw = run_plan(plan, job.target, log_dir=job.log_dir, cpus=job.cpus, workers=job.workers,
                       name=f"{job.name}-{self.name}-r{repeat}", timeout=self.timeout(plan))
        points = [to_point(p, job.settings, repeat) for p in raw.points]
        return ModeOutcome(points=points, stop_reason=raw.stop_reason, error=raw.error, workers=raw.workers,
                           locust_version=raw.locust_version)

    # --- the locust side's half (imports gevent/locust lazily: this module is loaded by the orchestrator too)
    @abstractmethod
    def drive(self, controller: Controller) -> str:
        """Run the controller's plan, appending a `RawPoint` per step to `controller.points`; the stop reason."""

    def drive_slice(self, environment: Any, step: Any, index: int, count: int) -> tuple[int, RawPart]:
        """A worker's share (`index` of `count`) of one step broadcast by `drive`: (phase, its part)."""
        raise NotImplementedError(f"the {self.name} mode does not split its steps between workers")


def drive_gated(controller: Controller, window: Callable[[dict[str, Any], int], RawPoint]) -> str:
    """The locust side of paired rounds (`Plan.gate_dir`, `deploy_compare.loadtests.paired`): wait for the
    orchestrator's next command (`cmd-<n>.json`), measure one window of it with `window(command, n)` (which
    leaves the server idle when it returns) and answer with the point (`out-<n>.json`, written atomically);
    ends on a stop command. Every wait is bounded by `Plan.gate_timeout`."""
    import json
    from pathlib import Path

    from deploy_compare.core.results import save

    plan = controller.plan
    gate = Path(plan.gate_dir)
    for n in range(10**6):
        cmd_path = gate / f"cmd-{n}.json"
        if not controller.wait_until(cmd_path.exists, plan.gate_timeout):
            raise TimeoutError(f"no command {cmd_path.name} in {gate} within {plan.gate_timeout:g} s")
        cmd = json.loads(cmd_path.read_text(encoding="utf-8"))
        if cmd.get("stop"):
            return str(cmd.get("reason") or "stopped by the orchestrator")
        point = window(cmd, n)
        controller.points.append(point)
        save(point, gate / f"out-{n}.json")
    raise RuntimeError("too many gated windows")
