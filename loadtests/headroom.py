"""The generator measured against itself: one headroom per protocol, and the harness's share per point.

A null endpoint (REST: `loadtests.nullserver`; gRPC: `loadtests.nullgrpc`) runs pinned to the server's
core; locust runs pinned to the others with the same locustfile, headers, model name and payload as
the real endpoint, and climbs the same user steps as the endpoints' sweeps (every step, no stop rule).
That one null sweep gives two things:
- the protocol's **headroom**: the generator's capacity = the sweep's highest throughput, measured at
  saturation (generator CPU at its limit or a throughput plateau), never extrapolated from a
  half-loaded point; `apply_headrooms` divides it by the fastest real endpoint of the protocol, and
  that stored ratio is what the console and the report show;
- the **harness's share** of every point: the null endpoint's latency at the point's concurrency
  (the generator's own time, inside every figure it measures), stored beside the point.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from deploy_compare.core.config import LoadSettings
from deploy_compare.core.kinds import LoadModeKind, Protocol
from deploy_compare.core.results import NotRun
from deploy_compare.loadtests.launch import LocustTarget, free_port
from deploy_compare.loadtests.modes import LoadJob, get_mode
from deploy_compare.loadtests.modes.closed import doubling_steps
from deploy_compare.loadtests.nullgrpc import start_null_grpc_server
from deploy_compare.loadtests.nullserver import start_null_server
from deploy_compare.loadtests.results import (
    EndpointLoad,
    GeneratorHeadroom,
    HarnessShare,
    LoadTestResults,
    MeasuredPoint,
)
from deploy_compare.loadtests.rules import StepFigure, sweep_stop_reason
from deploy_compare.serving.endpoint import Endpoint

NULL_SERVERS: dict[str, Callable] = {Protocol.REST: start_null_server, Protocol.GRPC: start_null_grpc_server}
MIN_RATIO = 5.0  # a generator with less than 5x the server's rate can shape what it measures


def generator_cpus(server_cpus: list[int] | set[int]) -> set[int] | None:
    """The cores the server does not use (None: no disjoint core left, generator not pinned)."""
    available = os.sched_getaffinity(0)
    rest = available - set(server_cpus)
    return rest or None


def server_core_for_null() -> set[int]:
    """The null server takes the lowest core (as the real servers do: ServeSettings.pin_server_cpu = 0)."""
    available = sorted(os.sched_getaffinity(0))
    return {available[0]} if len(available) >= 2 else set(available)


def null_endpoint(endpoint: Endpoint, port: int, pid: int, server_cpus: set[int]) -> Endpoint:
    """`endpoint` redirected to a null server on `port`: same protocol, path, model name, headers."""
    if endpoint.protocol == Protocol.REST:
        parts = urlsplit(endpoint.target)
        target = f"http://127.0.0.1:{port}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
    else:
        target = f"127.0.0.1:{port}"
    return replace(endpoint, stack=f"null/{endpoint.protocol}", target=target, server_pids=[pid],
                   server_cpus=sorted(server_cpus))


def _cpu(point: MeasuredPoint) -> float:
    return max((c.cpu_fraction for c in point.generator_cpu), default=0.0)


def headroom_of(protocol: str, twin: str | None, points: list[MeasuredPoint], settings: LoadSettings,
                gen_cpus: Sequence[int], server_cpus: Sequence[int]) -> GeneratorHeadroom:
    """Capacity = the null sweep's highest throughput; saturated when the generator reached its CPU limit
    or the throughput stopped growing (the sweeps' plateau rule, or a peak that more users did not pass)."""
    answered = [p for p in points if p.count > 0]
    if not answered:
        raise RuntimeError(f"the {protocol} null sweep had no successful request: nothing to measure")
    best = max(answered, key=lambda p: p.throughput_rps)
    figures = [StepFigure(users=p.users or 0, throughput=p.throughput_rps, p99_ms=None if not p.latency_ms
                          else p.latency_ms.stats["p99"]) for p in answered]
    plateau = next((reason for i in range(len(figures))
                    if (reason := sweep_stop_reason(figures[:i + 1], settings.plateau_gain, math.inf))), None)
    if plateau is None and best is not answered[-1]:  # more users after the peak did not add: it was the peak
        plateau = (f"throughput peaked at {best.users} users ({best.throughput_rps:,.0f} req/s); "
                   f"up to {answered[-1].users} users did not add")
    busiest = max(_cpu(p) for p in answered)
    if busiest >= settings.generator_cpu_limit:
        limited_by = f"generator CPU: {busiest:.0%} of one core (limit {settings.generator_cpu_limit:.0%})"
    elif plateau:
        limited_by = (f"{plateau}, with the generator at {busiest:.0%} of one core at most: the machine "
                      "(shared cores) or the null server limited it, so the capacity is a lower bound")
    else:
        limited_by = (f"not saturated by {answered[-1].users} users (generator at {busiest:.0%} of one core): "
                      "the capacity is a lower bound")
    return GeneratorHeadroom(protocol=str(protocol), twin=twin, capacity_rps=best.throughput_rps,
                    capacity_users=best.users or 0, generator_cpu_fraction=_cpu(best),
                    saturated=busiest >= settings.generator_cpu_limit or plateau is not None, limited_by=limited_by,
                    generator_cpus=sorted(gen_cpus), server_cpus=sorted(server_cpus), points=points)


def measure_headroom(endpoint: Endpoint, settings: LoadSettings, payload: str, log_dir: Path, *,
                     twin: str | None = None, users: list[int] | None = None) -> GeneratorHeadroom:
    """The null sweep for `endpoint`'s protocol and payload, at the endpoints' user steps."""
    protocol = endpoint.protocol
    if protocol not in NULL_SERVERS:
        raise ValueError(f"no null server for protocol {protocol!r}; known: {sorted(NULL_SERVERS)}")
    server_cpus = set(endpoint.server_cpus) or server_core_for_null()
    gen = generator_cpus(server_cpus)
    port = free_port()
    server = NULL_SERVERS[protocol](port, Path(log_dir) / f"null-{protocol}.log", cpus=server_cpus)
    try:
        target = LocustTarget.for_endpoint(null_endpoint(endpoint, port, server.pid, server_cpus), payload,
                                           twin=twin)
        steps = users or doubling_steps(settings.max_users)
        # one window per step: the null endpoint answers thousands of requests a second, steadily
        sweep_settings = replace(settings, window=settings.headroom_window or settings.window, windows_per_point=1,
                                 settle_windows=0)
        job = LoadJob(target=target, settings=sweep_settings, log_dir=Path(log_dir), name=f"headroom-{protocol}",
                      cpus=gen, workers=settings.workers, users=steps, stop_rule=False)
        outcome = get_mode(LoadModeKind.CLOSED).run(job)
    finally:
        server.stop(timeout=5)
    if outcome.error or not outcome.points:
        raise RuntimeError(f"{protocol} null sweep failed: {outcome.error or 'no point measured'}")
    return headroom_of(protocol, twin, outcome.points, settings, sorted(gen or ()), sorted(server_cpus))


def measure_headrooms(endpoints: Sequence[Endpoint], settings: LoadSettings, payload: str, log_dir: Path,
                      users: list[int] | None = None) -> tuple[list[GeneratorHeadroom], list[NotRun]]:
    """One null sweep per (protocol, twin) among `endpoints`, at `users` (default: the doubling steps to
    `max_users`); a failed one is recorded, never fatal."""
    seen: dict[tuple[str, str], Endpoint] = {}
    for ep in endpoints:
        seen.setdefault((ep.protocol, ep.model), ep)
    out, failed = [], []
    for (protocol, twin), ep in seen.items():
        try:
            out.append(measure_headroom(ep, settings, payload, log_dir, twin=twin, users=users))
        except Exception as exc:  # a check, not a gate: recorded, the servers are still measured
            failed.append(NotRun(what=f"load/null {protocol} headroom ({twin})", reason=f"{type(exc).__name__}: {exc}",
                                 enable_command="deploy-compare loadtest --null --payload RUN --twin TWIN"))
    return out, failed


def harness_share(point: MeasuredPoint, headroom: GeneratorHeadroom) -> HarnessShare | None:
    """The null sweep's figures at `point`'s concurrency. Closed loop: the same user count. Open loop: the
    point's mean requests in flight (rate x mean uncorrected latency, Little's law), rounded up to a step."""
    table = {p.users: p for p in headroom.points if p.latency_ms and p.users}
    if not table:
        return None
    if point.mode == "closed":
        users, basis = point.users or 0, "null endpoint at the same number of users"
    else:
        lat = point.uncorrected_ms or point.latency_ms
        if lat is None or point.target_rate is None:
            return None
        inflight = point.target_rate * lat.stats["mean"] / 1000.0
        above = [u for u in sorted(table) if u >= inflight]
        users = above[0] if above else max(table)
        basis = (f"open loop: {inflight:.1f} requests in flight on average (rate x mean latency); null endpoint "
                 f"at {users} users")
    null = table.get(users)
    if null is None or null.latency_ms is None:
        return None
    st = null.latency_ms.stats
    return HarnessShare(users=users, p50_ms=round(st["p50"], 4), mean_ms=round(st["mean"], 4),
                        p99_ms=round(st["p99"], 4), basis=basis)


def _fastest(endpoints: Sequence[EndpointLoad], protocol: str) -> tuple[float | None, str | None]:
    best: tuple[float | None, str | None] = (None, None)
    for ep in endpoints:
        if ep.status != "ok":  # a failed endpoint's partial figures are not results (its points are kept, shown failed)
            continue
        rps = ep.saturation.rps if ep.saturation else ep.saturation_rps
        if ep.endpoint.get("protocol") == protocol and rps and (best[0] is None or rps > best[0]):
            best = (rps, f"{ep.endpoint.get('stack')} {protocol} ({ep.endpoint.get('model')})")
    return best


def apply_headrooms(results: LoadTestResults, min_ratio: float = MIN_RATIO) -> None:
    """THE headroom ratio (capacity / fastest real endpoint of the protocol), stored in each headroom; every
    point gets its harness share and, when its protocol's ratio is under `min_ratio`, a warning."""
    for h in results.headrooms:
        h.fastest_rps, h.fastest_endpoint = _fastest(results.endpoints, h.protocol)
        h.ratio = h.capacity_rps / h.fastest_rps if h.fastest_rps else None
        h.min_ratio = min_ratio
    for ep in results.endpoints:
        protocol, twin = ep.endpoint.get("protocol"), ep.endpoint.get("model")
        matching = [h for h in results.headrooms if h.protocol == protocol]
        h = next((x for x in matching if x.twin == twin), matching[0] if matching else None)
        if h is None:
            continue
        warning = (f"generator headroom over {protocol} is {h.ratio:.1f}x the fastest {protocol} endpoint "
                   f"(< {min_ratio:g}x): the generator may shape this figure") if h.ratio and h.ratio < min_ratio \
            else None
        for p in [p for s in ep.sweeps for p in s.points] + ep.open_points:
            p.harness = harness_share(p, h) if h.twin == twin else None
            p.warnings = [w for w in p.warnings if not w.startswith("generator headroom")] + \
                ([warning] if warning else [])


def headroom_line(h: GeneratorHeadroom) -> str:
    """The console's sentence for one protocol (the stored figures, nothing recomputed)."""
    ratio = (f"{h.ratio:.1f}x the fastest {h.protocol} endpoint ({h.fastest_rps:,.0f} req/s, {h.fastest_endpoint})"
             if h.ratio else "no real endpoint measured to compare with")
    warn = "" if not h.ratio or h.ratio >= h.min_ratio else f" [red](< {h.min_ratio:g}x: points flagged)[/red]"
    return (f"generator headroom {h.protocol}: {h.capacity_rps:,.0f} req/s at {h.capacity_users} users "
            f"({h.generator_cpu_fraction:.0%} of a core; {'saturated' if h.saturated else 'NOT saturated'}) = "
            f"{ratio}{warn}")
