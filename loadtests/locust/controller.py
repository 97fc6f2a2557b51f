"""The controller (only with `--dc-plan`): runs the plan's load mode inside this locust process, or as a
locust master directing `--worker` processes (messages.py), and writes the `RawRun` JSON (`--dc-out`).

What a mode does per step is the mode's own (`LoadMode.drive`); the controller offers what every mode
needs: windows (`phase`), their parts from every process (`gather`), slices of a step sent to the
workers (`broadcast_step`), bounded waits and locust's request count.
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import locust
from locust.runners import MasterRunner

from deploy_compare.core.results import load, save
from deploy_compare.loadtests.locust import messages
from deploy_compare.loadtests.locust.recorder import RECORDER, PhaseBuf
from deploy_compare.loadtests.plan import Plan, RawPart, RawPoint, RawRun


class Controller:
    def __init__(self, environment: Any, plan: Plan) -> None:
        self.env = environment
        self.runner = environment.runner
        self.plan = plan
        self.distributed = isinstance(self.runner, MasterRunner)
        self.received: dict[int, list[RawPart]] = {}
        self.points: list[RawPoint] = []
        if self.distributed:
            self.runner.register_message(messages.PART, self._on_part)

    def _on_part(self, msg: Any, **_: Any) -> None:
        phase, part = messages.read_part(msg.data)
        self.received.setdefault(phase, []).append(part)

    def done_count(self) -> int:
        """Completed requests (successes and errors): a point of errors ends as fast as one of answers."""
        return self.runner.stats.total.num_requests

    def wait_until(self, cond: Callable[[], bool], timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while not cond():
            if time.perf_counter() > deadline:
                return False
            gevent.sleep(0.01)  # a paired window waits here several times: 50 ms polls cost ~0.2 s a window
        return True

    def set_users(self, users: int) -> None:
        """Run exactly `users` users now. Locally the users are spawned or stopped directly: locust's dispatcher
        (`runner.start`) took ~0.5 s to spawn one user after a ramp-down to 0, and ~0.26 s to stop it, which
        a paired window pays every time (measured on the null server, 2026-12-03). Distributed, the master's
        dispatcher tells the workers."""
        runner = self.runner
        if self.distributed or len(runner.user_classes) != 1:
            runner.start(users, spawn_rate=100)
            return
        name = runner.user_classes[0].__name__
        delta = users - runner.user_count
        if delta > 0:
            runner.spawn_users({name: delta})
        elif delta < 0:
            runner.stop_users({name: -delta})

    def workers(self) -> list[str]:
        return [c.id for c in self.runner.clients.all]

    @property
    def role(self) -> str:
        return "master" if self.distributed else "local"

    def phase(self, phase: int | None) -> PhaseBuf | None:
        """Open window `phase` (None: close the open one and return this process's buffer of it)."""
        if self.distributed:
            self.runner.send_message(messages.PHASE, {"phase": phase})
        if phase is None:
            buf = RECORDER.end()
            if buf is not None:
                RECORDER.done.pop(buf.phase, None)
            return buf
        RECORDER.begin(phase)
        return None

    def collect(self, phase: int) -> None:
        """Ask every worker for its part of the (closed) window `phase`."""
        if self.distributed:
            self.runner.send_message(messages.COLLECT, {"phase": phase})

    def broadcast_step(self, mode: str, step: Any) -> None:
        """Every worker drives its slice of `step` (`LoadMode.drive_slice`) and sends its part."""
        self.runner.send_message(messages.STEP, messages.step_message(mode, step, self.workers()))

    def gather(self, phase: int, local: RawPart | None, timeout: float) -> list[RawPart]:
        """The parts of `phase` from this process and (distributed) every worker."""
        parts = [local] if local is not None else []
        if self.distributed:
            n = len(self.workers())
            if not self.wait_until(lambda: len(self.received.get(phase, [])) >= n, timeout):
                raise TimeoutError(f"only {len(self.received.get(phase, []))} of {n} workers sent their samples "
                                   f"of point {phase} within {timeout:.0f} s")
            parts += self.received.pop(phase)
        return parts


def controller_main(environment: Any, plan_path: str, started: gevent.event.Event) -> None:
    from deploy_compare.loadtests.modes import get_mode

    runner = environment.runner
    plan = load(Plan, plan_path)
    out_path = environment.parsed_options.dc_out or plan.out
    controller: Controller | None = None
    error, stop_reason = None, ""
    try:
        controller = Controller(environment, plan)
        if not started.wait(timeout=90):
            raise TimeoutError("locust's headless start did not complete within 90 s (workers missing?)")
        stop_reason = get_mode(plan.mode).drive(controller)
    except BaseException as exc:  # kept in the raw run: the orchestrator reports it with the points so far
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        print(f"dc: controller failed: {error}", flush=True)
    try:
        workers = len(controller.workers()) if controller and not error and controller.distributed else 0
        raw = RawRun(plan=plan, points=controller.points if controller else [], stop_reason=stop_reason,
                     workers=workers, locust_version=locust.__version__, error=error)
        save(raw, out_path)
    finally:
        runner.quit()
