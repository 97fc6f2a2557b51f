"""Raw samples (from the locust process) -> typed points with statistics and a valid/invalid verdict."""
from __future__ import annotations

import statistics
from collections.abc import Sequence

from deploy_compare.core.config import LoadSettings
from deploy_compare.core.stats import backed_percentiles, repeat_interval, summarize
from deploy_compare.loadtests.plan import RawPoint
from deploy_compare.loadtests.results import (
    GeneratorCpu,
    LatencySummary,
    MeasuredPoint,
    RepeatSummary,
    Saturation,
    Sweep,
)
from deploy_compare.loadtests.rules import (
    SATURATING,
    StepFigure,
    ValidityLimits,
    invalid_reasons,
    saturation_index,
    stable,
    stop_kind,
)


def latency_summary(samples: Sequence[float]) -> LatencySummary | None:
    if not samples:
        return None
    return LatencySummary(stats=summarize(samples), backed=backed_percentiles(len(samples)))


def limits_of(settings: LoadSettings) -> ValidityLimits:
    return ValidityLimits(generator_cpu_limit=settings.generator_cpu_limit, late_send_ms=settings.late_send_ms,
                          late_send_fraction_limit=settings.late_send_fraction_limit,
                          error_rate_threshold=settings.error_rate_threshold,
                          min_samples=1)


def to_point(raw: RawPoint, settings: LoadSettings, repeat: int = 0) -> MeasuredPoint:
    ok = len(raw.latency_ms)
    n_err = sum(raw.errors.values())
    error_rate = n_err / (ok + n_err) if ok + n_err else 1.0
    late = sum(1 for x in raw.lateness_ms if x > settings.late_send_ms)
    late_fraction = late / len(raw.lateness_ms) if raw.lateness_ms else 0.0
    cpu = [GeneratorCpu(role=c.role, cpu_fraction=round(c.fraction, 4), scheduling=c.scheduling) for c in raw.cpu]
    cpu_max = max((c.cpu_fraction for c in cpu), default=0.0)
    limits = limits_of(settings)
    reasons = invalid_reasons(generator_cpu_max=cpu_max, late_fraction=late_fraction, error_rate=error_rate,
                              ok_count=ok, window_incomplete=raw.window_incomplete, limits=limits)
    return MeasuredPoint(
        settling_rps=[round(r, 1) for r in raw.settling_rps], settling_count=raw.settling_count,
        warnings=settling_warnings(raw.window_rps, raw.settling_rps, raw.settling_count, settings.point_tolerance),
        mode=raw.mode, users=raw.users, target_rate=raw.rate, repeat=repeat,
        duration_s=round(raw.window_seconds, 4), count=ok, errors=dict(raw.errors), error_rate=error_rate,
        throughput_rps=raw.throughput(), window_rps=[round(r, 1) for r in raw.window_rps],
        latency_ms=latency_summary(raw.latency_ms), samples_ms=[round(x, 3) for x in raw.latency_ms],
        generator_cpu=cpu, valid=not reasons, invalid_reasons=reasons,
        error_flag=error_rate > settings.error_rate_threshold, warmup_count=raw.warmup_count,
        uncorrected_ms=latency_summary(raw.uncorrected_ms), lateness_ms=latency_summary(raw.lateness_ms),
        late_fraction=late_fraction, scheduled=raw.scheduled, server_jit_cpu=raw.server_jit_cpu,
        window_start_unix=raw.window_start_unix, window_end_unix=raw.window_end_unix)


def settling_warnings(window_rps: list[float], settling_rps: list[float], settling_count: int,
                      tolerance: float) -> list[str]:
    """What the point's sub-windows say about its stability: earlier sub-windows left out, or no agreement."""
    out = []
    if settling_rps:
        out.append(f"{len(settling_rps)} earlier sub-window(s) at {', '.join(f'{r:,.0f}' for r in settling_rps)} "
                   f"req/s ({settling_count:,} requests) did not agree with the next ones within {tolerance:.0%} "
                   f"and are not in this point's figures")
    if window_rps and not stable(window_rps, len(window_rps), tolerance):
        out.append(f"its sub-windows ({', '.join(f'{r:,.0f}' for r in window_rps)} req/s) differ by "
                   f"{max(window_rps) / max(min(window_rps), 1e-9) - 1:.0%}, more than {tolerance:.0%}: the "
                   "server's throughput moved during the point")
    return out


def p99(point: MeasuredPoint) -> float | None:
    return point.latency_ms.stats["p99"] if point.latency_ms else None


def to_sweep(points: list[MeasuredPoint], stop_reason: str, slo_p99_ms: float, repeat: int,
             error: str | None = None) -> Sweep:
    """The saturation point: the highest valid throughput whose p99 meets the SLO; `saturated` only when
    the sweep stopped on a plateau or on the SLO (otherwise that throughput is a lower bound)."""
    valid = [p for p in points if p.valid]
    figures = [StepFigure(users=p.users or 0, throughput=p.throughput_rps, p99_ms=p99(p)) for p in valid]
    i = saturation_index(figures, slo_p99_ms)
    kind = stop_kind(stop_reason, error)
    return Sweep(repeat=repeat, points=points, stop_reason=stop_reason if not error else
                 f"{stop_reason + '; ' if stop_reason else ''}failed part-way: {error.splitlines()[0]}",
                 saturation_users=valid[i].users if i is not None else None,
                 saturation_rps=valid[i].throughput_rps if i is not None else None,
                 stop_kind=kind, saturated=kind in SATURATING and i is not None)


def saturation_of(sweeps: list[Sweep]) -> Saturation | None:
    """Found (every repeat stopped on a plateau or the SLO) -> "saturates at"; otherwise a lower bound."""
    measured = sorted((s for s in sweeps if s.saturation_rps), key=lambda s: s.saturation_rps or 0.0)
    if not measured:
        return None
    mid = measured[(len(measured) - 1) // 2] if len(measured) % 2 else None
    rps = statistics.median([s.saturation_rps or 0.0 for s in measured])
    users = (mid or measured[len(measured) // 2]).saturation_users
    found = all(s.saturated for s in sweeps)
    max_users = max((p.users or 0 for s in sweeps for p in s.points), default=0)
    if found:
        label = f"saturates at {rps:,.0f} req/s ({users} users)"
    else:
        label = f"at least {rps:,.0f} req/s, not saturated by {max_users} users"
    return Saturation(found=found, rps=rps, users=users, max_users=max_users,
                      stop_kinds=[str(s.stop_kind) for s in sweeps], stop_reasons=[s.stop_reason for s in sweeps],
                      label=label)


def repeat_summaries(points: list[MeasuredPoint]) -> list[RepeatSummary]:
    """Median + 95% interval across repeats, per load level that has >= 2 valid repeats."""
    by_load: dict[tuple[str, str], list[MeasuredPoint]] = {}
    for p in points:
        if p.valid and p.latency_ms:
            by_load.setdefault((p.mode, p.load), []).append(p)
    out = []
    for (mode, load), group in by_load.items():
        if len(group) < 2:
            continue
        out.append(RepeatSummary(mode=mode, load=load, metrics={
            "throughput_rps": repeat_interval([p.throughput_rps for p in group]),
            "p50_ms": repeat_interval([p.latency_ms.stats["p50"] for p in group if p.latency_ms]),
            "p99_ms": repeat_interval([p.latency_ms.stats["p99"] for p in group if p.latency_ms]),
        }))
    return out
