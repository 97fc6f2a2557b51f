"""Closed loop: N concurrent users, each waiting for its answer; N = 1, 2, 4, 8, ... up to max_users.
The sweep stops when two steps in a row add < plateau_gain throughput or p99 exceeds the SLO
(`loadtests.rules.sweep_stop_reason`, applied inside the locust process between steps)."""
from __future__ import annotations

from loadtests.modes.base import LOAD_MODES, LoadJob, LoadMode
from loadtests.plan import Plan


def doubling_steps(max_users: int) -> list[int]:
    if max_users < 1:
        raise ValueError(f"max_users must be >= 1, got {max_users}")
    steps, n = [], 1
    while n < max_users:
        steps.append(n)
        n *= 2
    return steps + [max_users]


@LOAD_MODES.add
class ClosedLoop(LoadMode):
    name = "closed"

    def plan(self, job: LoadJob) -> Plan:
        s = job.settings
        steps = job.users or doubling_steps(s.max_users)
        return Plan(mode="closed", steps=[float(u) for u in steps], window=s.window, out="",
                    plateau_gain=s.plateau_gain, slo_p99_ms=s.slo_p99_ms, stop_rule=job.stop_rule, seed=s.seed)
