"""Warm a server until it is stable, and an endpoint order that cannot bias a comparison.

- `warm_until_stable(job)`: before an endpoint's first measured point, closed-loop load at
  `server_warmup_users` in short windows until `server_warmup_stable_windows` windows in a row agree
  within `server_warmup_tolerance` of throughput (Triton perf_analyzer's stability rule) and, where the
  server has JIT compiler threads (TorchServe's JVM), those used at most `server_warmup_jit_cpu_limit` of
  a core in each of them; bounded by `server_warmup_seconds`. Excluded from every figure; how long it
  took and the compilers' share per window are recorded.
- `rotated(items, repeat)`: the order endpoints are measured in during one repeat. Repeat r starts
  at item r (mod n), so across n repeats each endpoint is measured first once; with one repeat the
  warm-up, not the order, keeps the first endpoint from paying its server's warm-up.
- `visits(n, repeats)`: the stage's schedule. First every endpoint's warm-up, then, with one repeat, each
  endpoint once with every mode; with several, closed-loop sweep r of every endpoint in rotated order,
  then each endpoint's open-loop repeats (their rates come from the median saturation of its sweeps).
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from deploy_compare.core.kinds import LoadModeKind
from deploy_compare.core.stats import WindowPolicy
from deploy_compare.loadtests.modes import LoadJob, ModeOutcome, get_mode
from deploy_compare.loadtests.results import ServerWarmup
from deploy_compare.loadtests.rules import warmed_reason

T = TypeVar("T")


def rotated(items: Sequence[T], repeat: int) -> list[T]:
    if not items:
        return []
    k = repeat % len(items)
    return list(items[k:]) + list(items[:k])


@dataclass(frozen=True)
class Visit:
    index: int  # which endpoint
    repeat: int  # closed-loop repeat of this visit (-1: every repeat of the modes)
    modes: tuple[LoadModeKind, ...]
    warm: bool  # warm the server through this endpoint (the warm-up visits, before any measurement)


def visits(n: int, repeats: int) -> list[Visit]:
    """Every endpoint is warmed before any is measured: on a fresh TorchServe the endpoint measured first
    was still ~20% slower at 1 user than in the other order when only its own warm-up preceded it (the
    server's JVM keeps speeding up for longer than one endpoint's warm-up)."""
    warm = [Visit(i, -1, (), True) for i in range(n)]
    if repeats <= 1:
        return warm + [Visit(i, -1, tuple(LoadModeKind), False) for i in range(n)]
    closed = [Visit(i, r, (LoadModeKind.CLOSED,), False) for r in range(repeats) for i in rotated(range(n), r)]
    return warm + closed + [Visit(i, -1, (LoadModeKind.OPEN,), False) for i in range(n)]


def warmup_job(job: LoadJob) -> LoadJob:
    """The warm-up as a closed-loop plan: one window per step at a fixed user count, stopped by stability."""
    s = job.settings
    window = s.server_warmup_window_seconds
    steps = max(s.server_warmup_stable_windows, math.floor(s.server_warmup_seconds / window))
    policy = WindowPolicy(warmup_seconds=0.0, warmup_samples=1, min_seconds=window, min_samples=1,
                          max_seconds=window + 10.0)
    return replace(job, users=[s.server_warmup_users] * steps, stop_rule=False, name=f"{job.name}-server-warmup",
                   stable_windows=s.server_warmup_stable_windows, stable_tolerance=s.server_warmup_tolerance,
                   settings=replace(s, window=policy, windows_per_point=1))


def warm_until_stable(job: LoadJob) -> tuple[ServerWarmup, ModeOutcome]:
    s = job.settings
    warm = warmup_job(job)
    t0 = time.perf_counter()
    outcome = get_mode(LoadModeKind.CLOSED).run(warm, repeat=0)
    rps = [round(p.throughput_rps, 1) for p in outcome.points]
    jit = [p.server_jit_cpu for p in outcome.points]
    watched = any(x is not None for x in jit)
    record = ServerWarmup(users=s.server_warmup_users, window_seconds=s.server_warmup_window_seconds,
                          windows_rps=rps, stable=warmed_reason(rps, jit, s.server_warmup_stable_windows,
                                                                s.server_warmup_tolerance,
                                                                s.server_warmup_jit_cpu_limit) is not None,
                          windows_jit_cpu=jit if watched else [],
                          jit_cpu_limit=s.server_warmup_jit_cpu_limit if watched else None,
                          stable_windows=s.server_warmup_stable_windows, tolerance=s.server_warmup_tolerance,
                          seconds=round(time.perf_counter() - t0, 2),
                          max_seconds=len(warm.users or []) * s.server_warmup_window_seconds)
    return record, outcome
