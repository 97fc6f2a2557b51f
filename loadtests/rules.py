"""The rules that decide when a sweep stops and whether a point is valid (conventions Part 1, rules 4-5).
Pure functions, shared by the locust process (sweep control) and the orchestrator (validity)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class StopKind(StrEnum):
    """Why a closed-loop sweep ended. Only PLATEAU and SLO mean a saturation was seen."""
    PLATEAU = "plateau"  # two steps in a row each added < plateau_gain throughput over the best before them
    SLO = "slo"  # a step's p99 exceeded the SLO
    LAST_STEP = "last_step"  # ran out of steps: the figure is a lower bound
    NO_SUCCESS = "no_success"  # a step without any successful request
    ERROR = "error"  # the generator or the server failed part-way
    STABLE = "stable"  # a warm-up's windows agreed (not a sweep: it ran at a fixed number of users)


SATURATING = frozenset({StopKind.PLATEAU, StopKind.SLO})
# the reason texts start with these, whichever process wrote them (the locust side sends text only)
_PREFIXES = {StopKind.PLATEAU: "throughput plateau", StopKind.SLO: "p99 ", StopKind.LAST_STEP: "reached the last step",
             StopKind.NO_SUCCESS: "no successful request", StopKind.STABLE: "stable:"}


@dataclass(frozen=True)
class StepFigure:
    users: int
    throughput: float  # successful requests per second
    p99_ms: float | None  # None when the step had no successful request


def sweep_stop_reason(history: list[StepFigure], plateau_gain: float, slo_p99_ms: float) -> str | None:
    """Why a closed-loop sweep should stop after the last step of `history`, or None to go on.

    Stops when the last step's p99 exceeds the SLO, or when the last two steps each added less than
    `plateau_gain` (a fraction) of throughput over the best step before them. The best, not the previous
    one: on a saturated server the steps scatter around the plateau by a few percent, and a dip followed by
    its recovery is not growth (the full profile's ONNX gRPC sweep ran on from 8 to 64 users at 1,495,
    1,406, 1,519 and 1,514 req/s because 1,406 -> 1,519 read as +8%).
    """
    if not history:
        return None
    last = history[-1]
    if last.p99_ms is None:
        return f"{_PREFIXES[StopKind.NO_SUCCESS]} at {last.users} users"
    if last.p99_ms > slo_p99_ms:
        return f"p99 {last.p99_ms:.1f} ms exceeded the SLO of {slo_p99_ms:g} ms at {last.users} users"
    if len(history) >= 3:
        gains = [_gain(max(history[:k], key=lambda f: f.throughput), history[k]) for k in (-2, -1)]
        if all(g < plateau_gain for g in gains):
            return (f"{_PREFIXES[StopKind.PLATEAU]}: the steps to {history[-2].users} and {last.users} users added "
                    f"{gains[0]:+.1%} and {gains[1]:+.1%} over the best step before them (< {plateau_gain:.0%} each)")
    return None


def no_valid_window_reason(users: int) -> str:
    """A paired step where every window of an endpoint was invalid or unanswered (kind: no success)."""
    return f"{_PREFIXES[StopKind.NO_SUCCESS]} in a valid window at {users} users"


def last_step_reason(users: int) -> str:
    return f"{_PREFIXES[StopKind.LAST_STEP]} ({users} users) without a plateau or an SLO breach"


def stop_kind(reason: str, error: str | None = None) -> StopKind:
    """The kind of a sweep's stop reason (an error part-way wins over the text written before it)."""
    if error:
        return StopKind.ERROR
    for kind, prefix in _PREFIXES.items():
        if reason.startswith(prefix):
            return kind
    raise ValueError(f"unknown sweep stop reason {reason!r}: expected one written by deploy_compare.loadtests.rules")


def stable_reason(windows: int, tolerance: float, jit_cpu_limit: float | None = None) -> str:
    jit = f", the server's JIT compilers at most {jit_cpu_limit:.0%} of a core in each" if jit_cpu_limit else ""
    return f"{_PREFIXES[StopKind.STABLE]} {windows} windows in a row within {tolerance:.0%} of throughput{jit}"


def jit_quiet(jit_cpu: Sequence[float | None], windows: int, limit: float) -> bool:
    """Whether the server's JIT compiler threads used at most `limit` of a core in each of the last
    `windows` windows (None: not watched or no JIT in that window's server, which counts as quiet)."""
    last = list(jit_cpu)[-windows:]
    return len(last) >= windows and all(x is None or x <= limit for x in last)


def warmed_reason(throughputs: list[float], jit_cpu: Sequence[float | None], windows: int, tolerance: float,
                  jit_cpu_limit: float) -> str | None:
    """The server warm-up's stop reason once it is settled (throughput `stable` and the JIT compilers
    quiet), else None: the one decision behind both the sweep's stop and the stored `ServerWarmup.stable`."""
    if not (stable(throughputs, windows, tolerance) and jit_quiet(jit_cpu, windows, jit_cpu_limit)):
        return None
    watched = any(x is not None for x in jit_cpu)
    return stable_reason(windows, tolerance, jit_cpu_limit if watched else None)


def stable(throughputs: list[float], windows: int = 3, tolerance: float = 0.10) -> bool:
    """Whether the last `windows` throughputs are within `tolerance` of each other (max/min - 1), the
    stability rule of Triton's perf_analyzer. At a fixed number of closed-loop users, throughput =
    users / mean latency, so stable throughput is also stable mean latency."""
    last = throughputs[-windows:]
    if len(last) < windows or min(last) <= 0:
        return False
    return max(last) / min(last) - 1.0 <= tolerance


def _gain(before: StepFigure, after: StepFigure) -> float:
    if before.throughput <= 0:
        return float("inf") if after.throughput > 0 else 0.0
    return after.throughput / before.throughput - 1.0


def saturation_index(history: list[StepFigure], slo_p99_ms: float) -> int | None:
    """Index of the saturation point: the step with the highest throughput whose p99 meets the SLO."""
    within = [i for i, s in enumerate(history) if s.p99_ms is not None and s.p99_ms <= slo_p99_ms]
    if not within:
        return None
    return max(within, key=lambda i: history[i].throughput)


@dataclass(frozen=True)
class ValidityLimits:
    generator_cpu_limit: float = 0.90  # fraction of one core per generator process
    late_send_ms: float = 1.0
    late_send_fraction_limit: float = 0.01
    error_rate_threshold: float = 0.01
    min_samples: int = 1


def invalid_reasons(*, generator_cpu_max: float, late_fraction: float, error_rate: float, ok_count: int,
                    window_incomplete: str | None, limits: ValidityLimits) -> list[str]:
    """Why a point must not be reported as a result (empty = valid)."""
    reasons = []
    if generator_cpu_max > limits.generator_cpu_limit:
        reasons.append(f"generator saturated: {generator_cpu_max:.0%} CPU of one core "
                       f"(> {limits.generator_cpu_limit:.0%}); the number measures the load generator")
    if late_fraction > limits.late_send_fraction_limit:
        reasons.append(f"{late_fraction:.2%} of sends were more than {limits.late_send_ms:g} ms late "
                       f"(> {limits.late_send_fraction_limit:.0%}): the schedule was not kept")
    if error_rate > limits.error_rate_threshold:
        reasons.append(f"error rate {error_rate:.2%} above the threshold {limits.error_rate_threshold:.0%}")
    if window_incomplete:
        reasons.append(window_incomplete)
    if ok_count < limits.min_samples:
        reasons.append(f"only {ok_count} successful requests (< {limits.min_samples} required)")
    return reasons
