"""Closed loop: N concurrent users, each waiting for its answer; N = 1, 2, 4, 8, ... up to max_users.
The sweep stops when two steps in a row add < plateau_gain throughput or p99 exceeds the SLO
(`deploy_compare.loadtests.rules.sweep_stop_reason`, applied inside the locust process between steps). Each repeat's
saturation throughput (the highest valid one within the SLO) sets the open loop's rates."""
from __future__ import annotations

import math
import statistics
import time
from typing import TYPE_CHECKING

from deploy_compare.core.kinds import LoadModeKind
from deploy_compare.core.stats import repeat_interval
from deploy_compare.loadtests.analysis import saturation_of, to_sweep
from deploy_compare.loadtests.modes.base import LOAD_MODES, Check, LoadJob, LoadMode, drive_gated
from deploy_compare.loadtests.plan import Plan, ProcessCpu, RawPoint
from deploy_compare.loadtests.results import EndpointLoad

if TYPE_CHECKING:
    from deploy_compare.loadtests.locust.controller import Controller


def doubling_steps(max_users: int) -> list[int]:
    if max_users < 1:
        raise ValueError(f"max_users must be >= 1, got {max_users}")
    steps, n = [], 1
    while n < max_users:
        steps.append(n)
        n *= 2
    return steps + [max_users]


def merged_cpu(cpu: list[ProcessCpu]) -> list[ProcessCpu]:
    """One record per process over a point's sub-windows (CPU and wall time summed)."""
    out: dict[tuple[str, int], ProcessCpu] = {}
    for c in cpu:
        m = out.setdefault((c.role, c.pid), ProcessCpu(role=c.role, pid=c.pid, cpu_seconds=0.0, wall_seconds=0.0))
        m.cpu_seconds += c.cpu_seconds
        m.wall_seconds += c.wall_seconds
    return list(out.values())


def set_saturation(result: EndpointLoad) -> None:
    """The endpoint's saturation from its sweeps (one per repeat, or per paired round): their median, its
    interval across them, and found or a lower bound."""
    sats = [sw.saturation_rps for sw in result.sweeps if sw.saturation_rps]
    result.saturation_rps = statistics.median(sats) if sats else None
    result.saturation_interval = repeat_interval(sats) if len(sats) >= 2 else None
    result.saturation = saturation_of(result.sweeps)


@LOAD_MODES.add
class ClosedLoop(LoadMode):
    name = LoadModeKind.CLOSED

    # --- orchestrator
    def plan(self, job: LoadJob) -> Plan:
        s = job.settings
        steps = job.users or doubling_steps(s.max_users)
        return Plan(mode=self.name, steps=[float(u) for u in steps], window=s.window, out="",
                    plateau_gain=s.plateau_gain, slo_p99_ms=s.slo_p99_ms, stop_rule=job.stop_rule, seed=s.seed,
                    stable_windows=job.stable_windows, stable_tolerance=job.stable_tolerance,
                    windows_per_step=s.windows_per_point, settle_windows=s.settle_windows,
                    settle_tolerance=s.point_tolerance, one_user_seconds=s.one_user_seconds,
                    jit_pids=list(job.server_pids) if job.stable_windows else [],
                    jit_cpu_limit=s.server_warmup_jit_cpu_limit)

    def timeout(self, plan: Plan) -> float:
        n = max(1, plan.windows_per_step)
        settle = (n + plan.settle_windows) / n if n > 1 else 1.0  # a settling point can take this much longer
        return 90 + (2 * plan.window.max_seconds * settle + 35) * len(plan.steps)

    def measure(self, job: LoadJob, result: EndpointLoad, check: Check) -> bool:
        s = job.settings
        first = len(result.sweeps)  # an endpoint visited once per repeat numbers its sweeps on
        for r in range(first, first + s.repeats):
            outcome = self.run(job, repeat=r)
            result.sweeps.append(to_sweep(outcome.points, outcome.stop_reason, s.slo_p99_ms, r, outcome.error))
            result.workers = outcome.workers
            if not check(f"closed-loop sweep (repeat {r})", outcome.error):
                return False
        set_saturation(result)
        return True

    # --- locust
    @staticmethod
    def spawn_and_warm(controller: Controller, users: int) -> tuple[bool, int]:
        """Run `users` users and wait out the warm-up (excluded): (whether it completed, its request count)."""
        w, runner = controller.plan.window, controller.runner
        controller.set_users(users)  # every user at once: the warm-up that follows excludes the start
        if not controller.wait_until(lambda: runner.user_count >= users, w.max_seconds):
            raise TimeoutError(f"locust did not spawn {users} users within {w.max_seconds:g} s")
        c0, t0 = controller.done_count(), time.perf_counter()
        warmed = controller.wait_until(lambda: controller.done_count() - c0 >= w.warmup_samples
                                       and time.perf_counter() - t0 >= w.warmup_seconds, w.max_seconds)
        return warmed, controller.done_count() - c0

    def gated_window(self, controller: Controller, cmd: dict, n: int) -> RawPoint:
        """One paired window (`drive_gated`): the command's users, warm-up (excluded), one window (time and
        count), then every user stopped (the server idles until the next command)."""
        w, runner = controller.plan.window, controller.runner
        users = int(cmd["users"])
        warmed, warm_count = self.spawn_and_warm(controller, users)
        controller.phase(n)
        c1, t1 = controller.done_count(), time.perf_counter()
        done = controller.wait_until(lambda: time.perf_counter() - t1 >= w.min_seconds
                                     and controller.done_count() - c1 >= w.min_samples, w.max_seconds)
        local = controller.phase(None)
        controller.set_users(0)  # idle until the next command
        controller.wait_until(lambda: runner.user_count == 0, 10.0)
        parts = controller.gather(n, local.part(controller.role) if local else None, timeout=30)
        incomplete = None
        if not warmed:
            incomplete = f"warm-up did not reach {w.warmup_samples} completed requests in {w.max_seconds:g} s"
        elif not done:
            incomplete = f"window did not reach {w.min_samples} completed requests in {w.max_seconds:g} s"
        point = RawPoint.from_parts(parts, mode=self.name, users=users, warmup_count=warm_count,
                                    window_incomplete=incomplete)
        point.cpu = merged_cpu(point.cpu)
        return point

    def drive(self, controller: Controller) -> str:
        from deploy_compare.core.proc import jit_cpu_seconds
        from deploy_compare.loadtests.rules import (
            StepFigure,
            last_step_reason,
            stable,
            sweep_stop_reason,
            warmed_reason,
        )

        plan, w = controller.plan, controller.plan.window
        history: list[StepFigure] = []
        jit: list[float | None] = []  # share of a core the server's JIT compilers used per step (warm-up)
        if plan.gate_dir:
            return drive_gated(controller, lambda cmd, n: self.gated_window(controller, cmd, n))
        for k, users in enumerate(int(u) for u in plan.steps):
            warmed, warm_count = self.spawn_and_warm(controller, users)
            # the window as `n` consecutive sub-windows: the point's throughput is their median, so one
            # hiccup of a shared machine moves it less than it moves a single window's mean; while the last
            # `n` disagree, up to `settle_windows` more (perf_analyzer's rule), and the point is the last `n`
            n = max(1, plan.windows_per_step)
            limit = n + plan.settle_windows if n > 1 else n
            min_seconds = max(w.min_seconds, plan.one_user_seconds) if users == 1 else w.min_seconds
            windows: list[tuple[list, float, float, bool]] = []  # (parts, throughput, seconds, complete)
            jit0, tj = (jit_cpu_seconds(plan.jit_pids) if plan.jit_pids else None), time.perf_counter()
            while len(windows) < n or (len(windows) < limit and not stable(
                    [x[1] for x in windows], n, plan.settle_tolerance)):
                phase = k * limit + len(windows)
                controller.phase(phase)
                c1, t1 = controller.done_count(), time.perf_counter()
                done = controller.wait_until(lambda: time.perf_counter() - t1 >= min_seconds / n
                                             and controller.done_count() - c1 >= math.ceil(w.min_samples / n),
                                             w.max_seconds)
                local = controller.phase(None)
                controller.collect(phase)
                sub = controller.gather(phase, local.part(controller.role) if local else None, timeout=30)
                wall = max((p.cpu.wall_seconds for p in sub), default=0.0)
                windows.append((sub, sum(len(p.latency_ms) for p in sub) / wall if wall else 0.0, wall, done))
            kept, settling = windows[-n:], windows[:-n]
            incomplete = None
            if not warmed:
                incomplete = f"warm-up did not reach {w.warmup_samples} completed requests in {w.max_seconds:g} s"
            elif not all(x[3] for x in kept):
                incomplete = f"window did not reach {w.min_samples} completed requests in {w.max_seconds:g} s"
            point = RawPoint.from_parts([p for x in kept for p in x[0]], mode=self.name, users=users,
                                        warmup_count=warm_count, window_incomplete=incomplete)
            point.window_seconds = sum(x[2] for x in kept)
            point.cpu = merged_cpu(point.cpu)
            point.window_rps = [x[1] for x in kept] if n > 1 else []
            point.settling_rps = [x[1] for x in settling]
            point.settling_count = sum(len(p.latency_ms) for x in settling for p in x[0])
            jit1 = jit_cpu_seconds(plan.jit_pids) if jit0 is not None else None
            if jit0 is not None and jit1 is not None:
                point.server_jit_cpu = round((jit1 - jit0) / max(time.perf_counter() - tj, 1e-9), 4)
            jit.append(point.server_jit_cpu)
            controller.points.append(point)
            lat = sorted(point.latency_ms)
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None
            history.append(StepFigure(users=users, throughput=point.throughput(), p99_ms=p99))
            print(f"dc: closed {users} users: {history[-1].throughput:.0f} req/s p99~{p99} ms", flush=True)
            if plan.stop_rule:
                reason = sweep_stop_reason(history, plan.plateau_gain, plan.slo_p99_ms)
                if reason:
                    return reason
            if plan.stable_windows:
                reason = warmed_reason([h.throughput for h in history], jit, plan.stable_windows,
                                       plan.stable_tolerance, plan.jit_cpu_limit)
                if reason:
                    return reason
        return last_step_reason(int(plan.steps[-1]))
