"""Paired rounds: the closed and open loops of every endpoint the report compares, measured side by side
(conventions rule 15). A shared machine drifts by tens of percent within minutes, so endpoints measured
one after another differ partly by the minute they were measured in; measured in alternation, the drift
falls on both sides of every ratio.

    measure_paired(eps, settings, ...)        # the closed loop of every endpoint, interleaved
    measure_paired_open(eps, settings, ...)   # then the open loop: each at its own fractions of saturation
    paired_comparisons(labels, models, points, rounds)   # per-round ratios of every two endpoints of a model

One locust process per endpoint stays up through the whole sweep, gated (`Plan.gate_dir`): it runs a
window only when told to (`cmd-<n>.json`: users) and answers with its point (`out-<n>.json`); between
windows it runs no user, so the servers not being measured idle (their CPU during each window is recorded
with it). At every step (users 1, 2, 4, ... or the profile's fixed list) there are `paired_rounds` rounds;
each round visits every endpoint still sweeping once, in a balanced rotating order (`balanced_order`: round
r is the order rotated by r // 2, reversed on odd rounds: ABBA BAAB for two), so no endpoint is always
first or always after the same one. Each window warms up (excluded) and then meets the window's time and
count. After a step's rounds each endpoint's step figure (the median of its rounds) goes through the sweep
stop rule; an endpoint whose sweep stopped drops out of the later steps.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from deploy_compare.core.config import LoadSettings
from deploy_compare.core.kinds import LoadModeKind
from deploy_compare.core.results import atomic_write_text, load
from deploy_compare.core.stats import PairedRatio, balanced_order, paired_ratio
from deploy_compare.loadtests.analysis import to_point
from deploy_compare.loadtests.launch import LocustFailed, RunningLocust, started
from deploy_compare.loadtests.modes import LoadJob, get_mode
from deploy_compare.loadtests.modes.closed import doubling_steps, set_saturation
from deploy_compare.loadtests.plan import RawPoint
from deploy_compare.loadtests.results import EndpointLoad, MeasuredPoint
from deploy_compare.loadtests.rules import StepFigure, last_step_reason, no_valid_window_reason, sweep_stop_reason


def paired_steps(settings: LoadSettings) -> tuple[list[int], bool]:
    """The users of the paired steps and whether the stop rule applies (a fixed list runs every step)."""
    if settings.paired_users:
        return list(settings.paired_users), False
    return doubling_steps(settings.max_users), True


def processes_cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time (user + system) so far of these processes and their children (0 for those gone)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system
        except psutil.Error:
            continue
    return total


@dataclass
class PairedEndpoint:
    """One endpoint in the rounds: its job, its record (from its warm-up), its server's processes."""
    label: str
    job: LoadJob
    result: EndpointLoad
    server: str  # the server's label (endpoints of one server share its processes)
    server_pids: list[int]
    around: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext


class Gate:
    """The orchestrator's side of one gated locust process."""

    def __init__(self, folder: Path, run: RunningLocust, timeout: float) -> None:
        self.folder, self.run, self.timeout, self.n = folder, run, timeout, 0

    def window(self, cmd: dict[str, Any]) -> RawPoint:
        """One window of `cmd` (users, or rate); raises `LocustFailed` (with its log) when the process died or
        the window took too long."""
        n = self.n
        self.n += 1
        atomic_write_text(self.folder / f"cmd-{n}.json", json.dumps(cmd))
        out = self.folder / f"out-{n}.json"
        deadline = time.monotonic() + self.timeout
        while not out.exists():
            if not self.run.alive():
                raise LocustFailed(f"the gated locust process exited before window {n}; log "
                                   f"{self.run.head.log_path}:\n{self.run.head.log_tail(2000)}")
            if time.monotonic() > deadline:
                raise LocustFailed(f"window {n} ({cmd}) did not end within {self.timeout:.0f} s; log "
                                   f"{self.run.head.log_path}")
            time.sleep(0.02)
        return load(RawPoint, out)

    def stop(self, reason: str) -> None:
        atomic_write_text(self.folder / f"cmd-{self.n}.json", json.dumps({"stop": True, "reason": reason}))
        deadline = time.monotonic() + 20
        while self.run.alive() and time.monotonic() < deadline:
            time.sleep(0.05)


Say = Callable[[str], None]


def measure_paired(eps: Sequence[PairedEndpoint], settings: LoadSettings, *, log_dir: Path,
                   alive: Callable[[PairedEndpoint], bool], say: Say = print) -> list[list[str]]:
    """The closed loop of `eps` in paired rounds (see the module doc); every endpoint's sweeps (one per
    round), saturation and failure are stored in its `result`. Returns the order of each round (labels)."""
    mode = get_mode(LoadModeKind.CLOSED)
    window = settings.paired_window or settings.window
    rounds = settings.paired_rounds
    steps, stop_rule = paired_steps(settings)
    points: dict[int, list[MeasuredPoint]] = {i: [] for i in range(len(eps))}
    history: dict[int, list[StepFigure]] = {i: [] for i in range(len(eps))}
    stopped: dict[int, str] = {}
    per_window = window.warmup_seconds + 2 * window.max_seconds + 30
    with tempfile.TemporaryDirectory(prefix="dc-paired-") as tmp, contextlib.ExitStack() as stack:
        gates = _open_gates(eps, lambda ep: replace(ep.job, settings=replace(ep.job.settings, window=window),
                                                    users=[1], stop_rule=False),
                            mode, per_window, Path(tmp), stack, log_dir)
        orders: list[list[str]] = []
        for users in steps:
            active = [i for i in gates if i not in stopped and eps[i].result.status == "ok"]
            if not active:
                break
            for r in range(rounds):
                order = balanced_order(active, r)
                if users == steps[0]:
                    orders.append([eps[i].label for i in order])
                for i in order:
                    if eps[i].result.status != "ok":
                        continue
                    p = _window(eps, i, gates[i], {"users": users}, r, settings)
                    if p is not None:
                        points[i].append(p)
                    if not alive(eps[i]):
                        _fail(eps[i], f"server process(es) {eps[i].server_pids} exited during the paired rounds "
                                      f"at {users} users; the points measured before are kept")
            for i in active:
                if eps[i].result.status != "ok":
                    continue
                at = [p for p in points[i] if p.users == users and p.valid]
                if not at:
                    stopped[i] = no_valid_window_reason(users)
                    continue
                p99s = [p.latency_ms.stats["p99"] for p in at if p.latency_ms]
                history[i].append(StepFigure(users=users, throughput=statistics.median(p.throughput_rps for p in at),
                                             p99_ms=statistics.median(p99s) if p99s else None))
                reason = sweep_stop_reason(history[i], settings.plateau_gain, settings.slo_p99_ms)
                if reason and stop_rule:
                    stopped[i] = reason
                say(f"  {eps[i].label} at {users} users: {history[i][-1].throughput:,.0f} req/s (median of "
                    f"{len(at)} rounds)" + (f"; sweep stops: {stopped[i]}" if i in stopped else ""))
        for i, gate in gates.items():
            gate.stop("the paired rounds ended")
            if eps[i].result.status == "ok" or points[i]:
                _store_sweeps(eps[i].result, points[i], stopped.get(i) or last_step_reason(steps[-1]), rounds,
                              settings.slo_p99_ms)
    return orders


def _fail(ep: PairedEndpoint, why: str) -> None:
    if ep.result.status == "ok":
        ep.result.status, ep.result.failure = "failed", why


def _open_gates(eps: Sequence[PairedEndpoint], job_of: Callable[[PairedEndpoint], LoadJob], mode: Any,
                per_window: float, tmp: Path, stack: contextlib.ExitStack, log_dir: Path) -> dict[int, Gate]:
    """A gated locust process of `mode` per endpoint still ok (stopped when `stack` closes)."""
    gates: dict[int, Gate] = {}
    for i, ep in enumerate(eps):
        if ep.result.status != "ok":
            continue
        job = job_of(ep)
        try:
            plan = mode.plan(job)
            folder = tmp / f"{mode.name}-{i}"
            folder.mkdir()
            plan.gate_dir, plan.gate_timeout = str(folder), per_window * (len(eps) + 1) + 120
            run = stack.enter_context(started(plan, job.target, log_dir=log_dir, cpus=job.cpus, workers=job.workers,
                                              name=f"{job.name}-{mode.name}-paired"))
        except Exception as exc:  # this endpoint cannot be measured; the others can
            _fail(ep, f"could not start its {mode.name}-loop load generator: {type(exc).__name__}: {exc}")
            continue
        gates[i] = Gate(folder, run, per_window)
    return gates


def measure_paired_open(eps: Sequence[PairedEndpoint], settings: LoadSettings, *, log_dir: Path,
                        alive: Callable[[PairedEndpoint], bool], say: Say = print) -> None:
    """The open loop of `eps` in paired rounds: at each of `open_loop_fractions`, `paired_rounds` rounds of one
    point per endpoint (at that fraction of its own saturation, a seeded Poisson schedule) in a balanced
    rotating order, stored in each record's `open_points` (`repeat` = round)."""
    mode = get_mode(LoadModeKind.OPEN)
    w = settings.paired_open_window or settings.window
    for ep in eps:
        if ep.result.status == "ok" and not ep.result.saturation_rps:
            _fail(ep, "no valid closed-loop point within the SLO: no saturation throughput to derive open-loop "
                      "rates from")
    per_window = w.warmup_seconds + w.max_seconds + settings.drain_seconds + 60
    with tempfile.TemporaryDirectory(prefix="dc-paired-open-") as tmp, contextlib.ExitStack() as stack:
        gates = _open_gates(eps, lambda ep: replace(ep.job, saturation_rps=ep.result.saturation_rps,
                                                    settings=replace(ep.job.settings, window=w),
                                                    workers=settings.open_loop_workers if settings.open_loop_workers
                                                    is not None else ep.job.workers),
                            mode, per_window, Path(tmp), stack, log_dir)
        for fraction in settings.open_loop_fractions:
            active = [i for i in gates if eps[i].result.status == "ok"]
            for r in range(settings.paired_rounds):
                for i in balanced_order(active, r):
                    if eps[i].result.status != "ok":
                        continue
                    rate = round(fraction * (eps[i].result.saturation_rps or 0.0), 1)
                    p = _window(eps, i, gates[i], {"rate": rate}, r, settings)
                    if p is not None:
                        eps[i].result.open_points.append(p)
                    if not alive(eps[i]):
                        _fail(eps[i], f"server process(es) {eps[i].server_pids} exited during the paired open-loop "
                                      "rounds; the points measured before are kept")
            say(f"  open loop at {fraction:.0%} of each endpoint's saturation: {settings.paired_rounds} rounds of "
                f"{len(active)} endpoints")
        for gate in gates.values():
            gate.stop("the paired open-loop rounds ended")


def _window(eps: Sequence[PairedEndpoint], i: int, gate: Gate, cmd: dict[str, Any], r: int,
            settings: LoadSettings) -> MeasuredPoint | None:
    """One window of endpoint i, with the CPU every other server used during it."""
    ep = eps[i]
    others: dict[str, list[int]] = {}
    for other in eps:
        if other.server != ep.server and other.server_pids:
            others.setdefault(other.server, other.server_pids)
    cpu0 = {k: processes_cpu_seconds(v) for k, v in others.items()}
    t0 = time.perf_counter()
    try:
        with ep.around():
            raw = gate.window(cmd)
    except Exception as exc:  # the generator (or the serving side's scrape) failed: this endpoint stops
        _fail(ep, f"paired window {cmd} (round {r}) failed: {type(exc).__name__}: "
                  f"{str(exc).splitlines()[0] if str(exc) else ''}")
        return None
    wall = max(time.perf_counter() - t0, 1e-9)
    point = to_point(raw, settings, repeat=r)
    point.idle_servers_cpu = {k: round((processes_cpu_seconds(v) - cpu0[k]) / wall, 4) for k, v in others.items()}
    return point


def _store_sweeps(result: EndpointLoad, points: list[MeasuredPoint], stop_reason: str, rounds: int,
                  slo_p99_ms: float) -> None:
    """One sweep per round (its points at every step), the stop reason of the steps' medians for each."""
    from deploy_compare.loadtests.analysis import to_sweep

    result.sweeps = [to_sweep([p for p in points if p.repeat == r], stop_reason, slo_p99_ms, r)
                     for r in range(rounds) if any(p.repeat == r for p in points)]
    set_saturation(result)


def paired_comparisons(eps: Sequence[tuple[str, str, EndpointLoad]]) -> list[PairedRatio]:
    """For every two endpoints of one model (label, model, record) and every step both measured: the
    per-round ratios of p50 (lower is better) and of throughput (higher is better), over the rounds in which
    both windows were valid."""
    out = []
    for (la, ma, ra), (lb, mb, rb) in itertools.combinations(eps, 2):
        if ma != mb:
            continue
        a = {(p.users, p.repeat): p for s in ra.sweeps for p in s.points if p.valid and p.latency_ms}
        b = {(p.users, p.repeat): p for s in rb.sweeps for p in s.points if p.valid and p.latency_ms}
        for users in sorted({u for u, _ in a} & {u for u, _ in b}):
            keys = sorted(k for k in a.keys() & b.keys() if k[0] == users)
            if not keys:
                continue
            pa, pb = [a[k] for k in keys], [b[k] for k in keys]
            load_ = f"{users} users"
            out.append(paired_ratio([p.latency_ms.stats["p50"] for p in pa],  # type: ignore[union-attr]
                                    [p.latency_ms.stats["p50"] for p in pb],  # type: ignore[union-attr]
                                    a_name=la, b_name=lb, metric="p50_ms", load=load_, higher_is_better=False))
            out.append(paired_ratio([p.throughput_rps for p in pa], [p.throughput_rps for p in pb], a_name=la,
                                    b_name=lb, metric="throughput_rps", load=load_, higher_is_better=True))
        oa, ob = _open_by_fraction(ra), _open_by_fraction(rb)
        for fraction in sorted({f for f, _ in oa} & {f for f, _ in ob}):
            keys = sorted(k for k in oa.keys() & ob.keys() if k[0] == fraction)
            if not keys:  # both have valid open-loop points at this fraction, but in no common round
                continue
            out.append(paired_ratio([oa[k].latency_ms.stats["p50"] for k in keys],  # type: ignore[union-attr]
                                    [ob[k].latency_ms.stats["p50"] for k in keys],  # type: ignore[union-attr]
                                    a_name=la, b_name=lb, metric="p50_ms", higher_is_better=False,
                                    load=f"{fraction:.0%} of its saturation (open loop)"))
    return out


def _open_by_fraction(r: EndpointLoad) -> dict[tuple[float, int], MeasuredPoint]:
    """(fraction of saturation, round) -> the valid open-loop point (corrected latency)."""
    if not r.saturation_rps:
        return {}
    return {(round((p.target_rate or 0.0) / r.saturation_rps, 2), p.repeat): p for p in r.open_points
            if p.valid and p.latency_ms and p.target_rate}
