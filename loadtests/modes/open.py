"""Open loop: requests arrive on a seeded Poisson schedule at a target rate, whether or not earlier
ones finished. Latency = completion - SCHEDULED send (coordinated-omission corrected); the uncorrected
figure (completion - actual send, once a connection is free) and the send lateness are kept beside it.
Target rates default to `open_loop_fractions` of the saturation throughput of the closed-loop sweep.
In a distributed run every worker sends every n-th arrival of the same schedule."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from core.kinds import LoadModeKind
from core.results import from_json_data
from loadtests.modes.base import LOAD_MODES, Check, LoadJob, LoadMode
from loadtests.plan import Plan, RawPart, RawPoint, poisson_offsets
from loadtests.results import EndpointLoad

if TYPE_CHECKING:
    from loadtests.locust.controller import Controller
    from loadtests.locust.recorder import PhaseBuf


@dataclass
class OpenStep:
    """One open-loop point as the locust processes drive it."""

    phase: int
    rate: float  # target arrivals per second
    seed: int
    warmup: float  # seconds of schedule before the window opens
    duration: float  # seconds of the measured window
    drain: float  # seconds to wait for outstanding requests after the last send
    connections: int  # requests in flight at most


def target_rates(job: LoadJob) -> list[float]:
    if job.rates:
        return [float(r) for r in job.rates]
    if not job.saturation_rps:
        raise ValueError("open loop needs target rates (--rate) or a measured saturation throughput")
    return [round(f * job.saturation_rps, 1) for f in job.settings.open_loop_fractions]


@LOAD_MODES.add
class OpenLoop(LoadMode):
    name = LoadModeKind.OPEN

    # --- orchestrator
    def plan(self, job: LoadJob) -> Plan:
        rates = target_rates(job)
        if any(r <= 0 for r in rates):
            raise ValueError(f"target rates must be > 0 req/s, got {rates}")
        s = job.settings
        return Plan(mode=self.name, steps=rates, window=s.window, out="", seed=s.seed, connections=job.connections)

    def timeout(self, plan: Plan) -> float:
        w = plan.window
        per = w.warmup_seconds + w.max_seconds + plan.drain_seconds + 35 + max(
            (w.warmup_samples / r for r in plan.steps), default=0)
        return 90 + per * len(plan.steps)

    def measure(self, job: LoadJob, result: EndpointLoad, check: Check) -> bool:
        if not job.rates and not result.saturation_rps:
            result.status = "failed"
            result.failure = ("no valid closed-loop point within the SLO: no saturation throughput to "
                              "derive open-loop rates from")
            return False
        job = replace(job, saturation_rps=result.saturation_rps)
        if job.settings.open_loop_workers is not None:
            job = replace(job, workers=job.settings.open_loop_workers)
        for r in range(job.settings.repeats):
            outcome = self.run(job, repeat=r)
            result.open_points += outcome.points
            if not check(f"open-loop points (repeat {r})", outcome.error):
                return False
        return True

    # --- locust
    def drive(self, controller: Controller) -> str:
        plan, w = controller.plan, controller.plan.window
        for k, rate in enumerate(plan.steps):
            warm = max(w.warmup_seconds, w.warmup_samples / rate)
            duration = min(max(w.min_seconds, 1.05 * w.min_samples / rate), w.max_seconds)
            incomplete = None
            if rate * duration < w.min_samples:
                incomplete = (f"{rate:.0f} req/s over the {w.max_seconds:g} s limit schedules fewer than "
                              f"{w.min_samples} requests")
            step = OpenStep(phase=k, rate=rate, seed=plan.seed + k, warmup=warm, duration=duration,
                            drain=plan.drain_seconds, connections=plan.connections)
            if controller.distributed:
                controller.broadcast_step(self.name, step)
                parts = controller.gather(k, None, timeout=warm + duration + plan.drain_seconds + 30)
            else:
                parts = [send_slice(controller.env, step, 0, 1).part("local")]
            controller.points.append(RawPoint.from_parts(parts, mode=self.name, rate=rate,
                                                         window_incomplete=incomplete))
            print(f"dc: open {rate:.0f} req/s done", flush=True)
        return f"measured {len(plan.steps)} open-loop rate(s)"

    def drive_slice(self, environment: Any, step: Any, index: int, count: int) -> tuple[int, RawPart]:
        spec = from_json_data(OpenStep, step)
        return spec.phase, send_slice(environment, spec, index, count).part("worker")


def send_slice(environment: Any, step: OpenStep, index: int, count: int) -> PhaseBuf:
    """Send this process's slice (every `count`-th arrival from `index`) of one open-loop point's schedule,
    independent of responses; returns the window's buffer once every request ended or the drain expired.

    The schedule is kept by a native thread sleeping with the OS's (microsecond) timer: the gevent loop's
    timers have 1 ms granularity, which alone would make sends up to 1 ms late. At each scheduled time
    the thread hands a dispatch callback to the event loop, which spawns the request's greenlet; the
    greenlet records its lateness (dispatch - scheduled), waits for a free connection (the server's
    backlog, not lateness), then sends.
    """
    import gevent
    import gevent.event
    import gevent.lock
    import gevent.pool
    from gevent import monkey

    from loadtests.locust.options import config
    from loadtests.locust.recorder import PhaseBuf, cpu_seconds

    real_sleep = monkey.get_original("time", "sleep")
    start_thread = monkey.get_original("_thread", "start_new_thread")
    sender = config().make_sender(environment, concurrency=step.connections)
    slots = gevent.lock.BoundedSemaphore(step.connections)
    group = gevent.pool.Group()
    warm, duration = step.warmup, step.duration
    offsets = poisson_offsets(step.rate, warm + duration, step.seed)[index::count]
    buf = PhaseBuf(step.phase)
    loop = gevent.get_hub().loop
    finished = gevent.event.Event()
    failure: list[BaseException] = []

    def fire(target: PhaseBuf | None, t_sched: float) -> None:
        if target is not None:
            target.late.append((time.perf_counter() - t_sched) * 1000.0)
        with slots:  # a free connection / stream; waiting here is the server's backlog, not lateness
            sender.send(context={"dc": (target, t_sched, time.perf_counter())})

    def dispatch(off: float, t_sched: float) -> None:  # runs in the event loop: must not block
        target = None
        if off >= warm:
            if buf.scheduled == 0:  # the window's CPU and wall time start at its first scheduled send
                buf.cpu0, buf.t0 = cpu_seconds(), t0 + warm
            target = buf
            buf.scheduled += 1
        group.spawn(fire, target, t_sched)

    def keep_schedule() -> None:  # native thread
        try:
            for off in offsets:
                t_sched = t0 + off
                delay = t_sched - time.perf_counter()
                if delay > 0:
                    real_sleep(delay)
                loop.run_callback_threadsafe(dispatch, off, t_sched)
        except BaseException as exc:  # handed to the greenlet below, which raises it
            failure.append(exc)
        finally:
            loop.run_callback_threadsafe(finished.set)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)  # let the scheduler thread take the GIL promptly at its send times
    try:
        t0 = time.perf_counter() + 0.05
        start_thread(keep_schedule, ())
        if not finished.wait(timeout=warm + duration + 30):
            raise TimeoutError("the open-loop scheduler thread did not finish its schedule")
        if failure:
            raise failure[0]
        gevent.sleep(max(0.0, t0 + warm + duration - time.perf_counter()))
        buf.close()  # CPU and wall of the sending window; requests finishing in the drain still count
        group.join(timeout=step.drain)
    finally:
        sys.setswitchinterval(previous)
    buf.unfinished = len(group)
    if buf.unfinished:
        buf.errors["unfinished"] += buf.unfinished
        group.kill(block=True, timeout=5)
    return buf
