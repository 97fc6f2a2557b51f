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

from deploy_compare.core.kinds import LoadModeKind
from deploy_compare.core.results import from_json_data
from deploy_compare.loadtests.modes.base import LOAD_MODES, Check, LoadJob, LoadMode, drive_gated
from deploy_compare.loadtests.plan import Plan, RawPart, RawPoint, poisson_offsets
from deploy_compare.loadtests.results import EndpointLoad

if TYPE_CHECKING:
    from deploy_compare.loadtests.locust.controller import Controller
    from deploy_compare.loadtests.locust.recorder import PhaseBuf


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
    realtime_priority: int = 0  # SCHED_FIFO priority of the sending process while the point lasts (0: normal)


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
        return Plan(mode=self.name, steps=rates, window=s.window, out="", seed=s.seed, connections=job.connections,
                    drain_seconds=s.drain_seconds, realtime_priority=s.open_loop_realtime_priority)

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
        plan = controller.plan
        if plan.gate_dir:  # paired rounds: one point per command, at the command's rate
            return drive_gated(controller, lambda cmd, n: self.point(controller, float(cmd["rate"]), n))
        for k, rate in enumerate(plan.steps):
            controller.points.append(self.point(controller, rate, k))
            print(f"dc: open {rate:.0f} req/s done", flush=True)
        return f"measured {len(plan.steps)} open-loop rate(s)"

    def point(self, controller: Controller, rate: float, k: int) -> RawPoint:
        """One open-loop point at `rate` (phase and seed offset `k`): its warm-up of schedule (excluded), its
        window (time and count), the drain."""
        plan, w = controller.plan, controller.plan.window
        warm = max(w.warmup_seconds, w.warmup_samples / rate)
        duration = min(max(w.min_seconds, 1.05 * w.min_samples / rate), w.max_seconds)
        incomplete = None
        if rate * duration < w.min_samples:
            incomplete = (f"{rate:.0f} req/s over the {w.max_seconds:g} s limit schedules fewer than "
                          f"{w.min_samples} requests")
        step = OpenStep(phase=k, rate=rate, seed=plan.seed + k, warmup=warm, duration=duration,
                        drain=plan.drain_seconds, connections=plan.connections,
                        realtime_priority=plan.realtime_priority)
        if controller.distributed:
            controller.broadcast_step(self.name, step)
            parts = controller.gather(k, None, timeout=warm + duration + plan.drain_seconds + 30)
        else:
            parts = [send_slice(controller.env, step, 0, 1).part("local")]
        return RawPoint.from_parts(parts, mode=self.name, rate=rate, window_incomplete=incomplete)

    def drive_slice(self, environment: Any, step: Any, index: int, count: int) -> tuple[int, RawPart]:
        spec = from_json_data(OpenStep, step)
        return spec.phase, send_slice(environment, spec, index, count).part("worker")


def send_slice(environment: Any, step: OpenStep, index: int, count: int) -> PhaseBuf:
    """Send this process's slice (every `count`-th arrival from `index`) of one open-loop point's schedule,
    independent of responses; returns the window's buffer once every request ended or the drain expired.

    The schedule is kept by a native thread sleeping with the OS's (microsecond) timer: the gevent loop's
    timers have 1 ms granularity, which alone would make sends up to 1 ms late. At each scheduled time
    the thread writes the request itself on an idle connection of the raw senders (`start_nowait`) and
    hands the answer's reading to the event loop; it needs only the GIL, which it gets within the
    switch interval set here. (Spawning a greenlet per send made the send wait for whatever the loop
    was doing, a run of answers say.) When no connection is idle the send goes through the loop: its
    greenlet waits for a connection and sends. Its lateness is counted to the moment the thread found
    every connection carrying a request (the wait is then the server's backlog, as in wrk2), else (the
    pool is still growing) to the greenlet's start.

    Both threads run under SCHED_FIFO while the point lasts when the system allows it
    (`deploy_compare.core.realtime`; what was in effect is recorded with the process's CPU figures). Measured against
    TorchServe's gRPC API at 1,000 req/s, three 10 s points each: 0.30-0.55% of sends over 1 ms late
    (at most 4.6-6.5 ms, once a second: the VM agent's bursts) under the normal policy; 0.15-0.24%
    (at most 2.0-2.3 ms) under SCHED_FIFO.
    """
    import gevent
    import gevent.event
    import gevent.lock
    import gevent.pool
    from gevent import monkey

    from deploy_compare.core.realtime import realtime
    from deploy_compare.loadtests.locust.options import config
    from deploy_compare.loadtests.locust.recorder import PhaseBuf, cpu_seconds

    real_sleep = monkey.get_original("time", "sleep")
    start_thread = monkey.get_original("_thread", "start_new_thread")
    sender = config().make_sender(environment, concurrency=step.connections)
    direct = getattr(sender, "start_nowait", None)  # the raw senders (https goes through FastHttpSession)
    slots = gevent.lock.BoundedSemaphore(step.connections)  # FastHttpSession's requests in flight
    group = gevent.pool.Group()
    warm, duration = step.warmup, step.duration
    offsets = poisson_offsets(step.rate, warm + duration, step.seed)[index::count]
    buf = PhaseBuf(step.phase)
    loop = gevent.get_hub().loop
    finished = gevent.event.Event()
    failure: list[BaseException] = []

    def window_of(off: float) -> PhaseBuf | None:  # the event loop: the window a scheduled send belongs to
        if off < warm:
            return None
        if buf.scheduled == 0:  # the window's CPU and wall time start at its first scheduled send
            buf.cpu0, buf.t0 = cpu_seconds(), t0 + warm
        buf.scheduled += 1
        return buf

    def fire(target: PhaseBuf | None, t_sched: float, t_ready: float | None) -> None:  # a greenlet
        if target is not None:
            target.late.append(((t_ready or time.perf_counter()) - t_sched) * 1000.0)
        if direct is None:
            with slots:  # a free connection; waiting here is the server's backlog, not lateness
                sender.send(context={"dc": (target, t_sched, time.perf_counter())})
            return
        t_wait = time.perf_counter()
        try:
            conn = sender.acquire()  # waiting for a free connection is the server's backlog, not lateness
        except Exception as err:  # a failed request, counted by kind in the recorder
            sender.report(t_wait, 0, err, {"dc": (target, t_sched, t_wait)})
            return
        sender.send(context={"dc": (target, t_sched, time.perf_counter())}, conn=conn)

    def dispatch(off: float, t_sched: float, t_ready: float | None) -> None:  # the event loop: must not block
        group.spawn(fire, window_of(off), t_sched, t_ready)

    def receive(off: float, t_sched: float, started: tuple[Any, Any, float]) -> None:  # the event loop
        conn, pending, t_send = started  # written by the scheduler thread at t_send
        target = window_of(off)
        if target is not None:
            target.late.append((t_send - t_sched) * 1000.0)
        group.spawn(sender.complete, conn, pending, t_send, {"dc": (target, t_sched, t_send)})

    def keep_schedule() -> None:  # native thread
        try:
            for off in offsets:
                t_sched = t0 + off
                delay = t_sched - time.perf_counter()
                if delay > 0:
                    real_sleep(delay)
                started = direct() if direct is not None else None
                if started is not None:
                    loop.run_callback_threadsafe(receive, off, t_sched, started)
                    continue
                # every connection carries a request: the send waits for the server (its backlog), and
                # the generator was ready now
                t_ready = time.perf_counter() if direct is not None and sender.full else None
                loop.run_callback_threadsafe(dispatch, off, t_sched, t_ready)
        except BaseException as exc:  # handed to the greenlet below, which raises it
            failure.append(exc)
        finally:
            loop.run_callback_threadsafe(finished.set)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)  # let the scheduler thread take the GIL promptly at its send times
    try:
        with realtime(step.realtime_priority) as buf.scheduling:  # the scheduler thread inherits it
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
        close = getattr(sender, "close", None)  # the raw senders' idle connections, on every exit path
        if close is not None:
            close()
    buf.unfinished = len(group)
    if buf.unfinished:
        buf.errors["unfinished"] += buf.unfinished
        group.kill(block=True, timeout=5)
    return buf
