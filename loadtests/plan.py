"""The contract between the orchestrating process and the locust process (which never share memory:
locust monkey-patches the standard library with gevent, so it always runs in its own process).

- `Plan`: what the locust process must run (mode, steps, window policy, stop rule, open-loop
  settings), written as JSON and passed with `--dc-plan FILE`.
- `RawPoint` / `RawRun`: what it hands back (`--dc-out FILE`): per point the raw per-request samples
  (milliseconds, perf_counter deltas), errors by kind and the generator's CPU time per process.
- `RawPart`: one locust process's share of a point (a worker sends its part to the master as a
  message); `RawPoint.from_parts` joins them.
All of them cross the process boundary as JSON of these dataclasses (`deploy_compare.core.results`).
  Statistics are derived from these by the orchestrator (`deploy_compare.loadtests.analysis`), never by locust.

Light module: numpy-free, locust-free; imported on both sides.
"""
from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field

from deploy_compare.core.kinds import LoadModeKind
from deploy_compare.core.stats import WindowPolicy


@dataclass
class Plan:
    mode: LoadModeKind
    steps: list[float]  # closed: users per step; open: target arrival rates (req/s)
    window: WindowPolicy
    out: str  # path of the RawRun JSON the locust process writes
    plateau_gain: float = 0.05  # closed: stop after two steps each adding < this fraction of throughput
    slo_p99_ms: float = 200.0  # closed: stop once a step's p99 exceeds it
    stop_rule: bool = True  # closed: apply the stop rule (False = run every step)
    stable_windows: int = 0  # closed: stop once this many windows in a row agree (0 = off; server warm-up)
    stable_tolerance: float = 0.10  # closed: ... within this fraction (max/min - 1) of throughput
    windows_per_step: int = 1  # closed: sub-windows per step (throughput = their median)
    settle_windows: int = 0  # closed: up to this many more sub-windows until the last ones agree
    settle_tolerance: float = 0.10  # closed: ... within this fraction (max/min - 1) of throughput
    one_user_seconds: float = 0.0  # closed: the 1-user step's window lasts at least this long
    # closed, with stable_windows: processes whose JIT compiler threads must also be quiet (at most
    # jit_cpu_limit of a core in each of the stable windows) before the warm-up counts as stable
    jit_pids: list[int] = field(default_factory=list)
    jit_cpu_limit: float = 0.03
    seed: int = 4321  # open: seed of the Poisson schedule
    connections: int = 64  # open: requests in flight at most (connections / streams); the rest wait
    drain_seconds: float = 10.0  # open: how long to wait for outstanding requests after the last send
    realtime_priority: int = 0  # open: SCHED_FIFO priority of the sending processes during a point (0: normal)
    # closed, paired rounds (`deploy_compare.loadtests.paired`): the folder the orchestrator writes one command
    # per window to (`cmd-<n>.json`: users, or stop) and this process answers in (`out-<n>.json`, a RawPoint);
    # between windows no user runs. Empty: the plan's own steps, one after another
    gate_dir: str = ""
    gate_timeout: float = 900.0  # closed, gated: the longest wait for the next command
    requests: list[str] = field(default_factory=list, repr=False)  # base64 of the requests' wire bytes

    def set_requests(self, wire: list[bytes]) -> None:
        self.requests = [base64.b64encode(r).decode("ascii") for r in wire]

    def wire_requests(self) -> list[bytes]:
        """The pre-built requests to send, in order (empty: the locust process builds them from its options)."""
        return [base64.b64decode(r) for r in self.requests]


@dataclass
class ProcessCpu:
    role: str  # local | master | worker
    pid: int
    cpu_seconds: float  # user + system CPU time of the process during the window
    wall_seconds: float
    scheduling: str = ""  # open loop: the sending threads' scheduling policy (`deploy_compare.core.realtime`)

    @property
    def fraction(self) -> float:
        """CPU used as a fraction of one core (a gevent process is one core's worth of Python)."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


@dataclass
class RawPart:
    """One process's samples of one point (all three lists in ms)."""

    cpu: ProcessCpu
    latency_ms: list[float] = field(default_factory=list)
    uncorrected_ms: list[float] = field(default_factory=list)
    lateness_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    scheduled: int = 0
    unfinished: int = 0
    start_unix: float | None = None  # wall clock when this process opened the window
    end_unix: float | None = None  # ... and closed it


@dataclass
class RawPoint:
    mode: LoadModeKind
    users: int | None
    rate: float | None
    window_seconds: float
    latency_ms: list[float]  # successful requests: closed = response time; open = completion - SCHEDULED send
    errors: dict[str, int] = field(default_factory=dict)  # kind -> count (non-2xx as "http_<code>")
    warmup_count: int = 0
    cpu: list[ProcessCpu] = field(default_factory=list)
    # open loop only
    uncorrected_ms: list[float] = field(default_factory=list)  # completion - actual send (connection acquired)
    lateness_ms: list[float] = field(default_factory=list)  # dispatch - scheduled send (generator's own delay)
    scheduled: int = 0  # sends scheduled in the window
    unfinished: int = 0  # still in flight when the drain ended (also counted in errors as "unfinished")
    window_incomplete: str | None = None  # why the window could not reach its minimums, if it could not
    window_rps: list[float] = field(default_factory=list)  # closed: throughput of each sub-window (if several)
    # closed: sub-windows before the point's windows settled (not in its samples): their throughput, requests
    settling_rps: list[float] = field(default_factory=list)
    settling_count: int = 0
    server_jit_cpu: float | None = None  # share of a core the server's JIT compilers used (None: not watched)
    window_start_unix: float | None = None  # earliest window start of any process (wall clock)
    window_end_unix: float | None = None  # latest window end of any process

    def throughput(self) -> float:
        """Successful requests per second: the median of the sub-windows when there are several."""
        if self.window_rps:
            import statistics

            return statistics.median(self.window_rps)
        return len(self.latency_ms) / self.window_seconds if self.window_seconds > 0 else 0.0

    @classmethod
    def from_parts(cls, parts: list[RawPart], *, mode: LoadModeKind, users: int | None = None,
                   rate: float | None = None, warmup_count: int = 0,
                   window_incomplete: str | None = None) -> RawPoint:
        """One point from every process's part; its window is the longest process window."""
        errors: dict[str, int] = {}
        for p in parts:
            for kind, n in p.errors.items():
                errors[kind] = errors.get(kind, 0) + n
        return cls(mode=mode, users=users, rate=rate,
                   window_seconds=max((p.cpu.wall_seconds for p in parts), default=0.0),
                   latency_ms=[x for p in parts for x in p.latency_ms], errors=errors, warmup_count=warmup_count,
                   cpu=[p.cpu for p in parts], uncorrected_ms=[x for p in parts for x in p.uncorrected_ms],
                   lateness_ms=[x for p in parts for x in p.lateness_ms],
                   scheduled=sum(p.scheduled for p in parts), unfinished=sum(p.unfinished for p in parts),
                   window_incomplete=window_incomplete,
                   window_start_unix=min((p.start_unix for p in parts if p.start_unix is not None), default=None),
                   window_end_unix=max((p.end_unix for p in parts if p.end_unix is not None), default=None))


@dataclass
class RawRun:
    plan: Plan
    points: list[RawPoint]
    stop_reason: str
    workers: int  # worker processes that reported samples (0 = single process)
    locust_version: str
    error: str | None = None  # the locust side failed part-way: points so far are kept


def poisson_offsets(rate: float, seconds: float, seed: int) -> list[float]:
    """Seeded Poisson arrival times (s from the start) over `seconds` at `rate` per second: the open-loop
    schedule, fixed before the point starts and independent of the responses."""
    if rate <= 0:
        raise ValueError(f"arrival rate must be > 0, got {rate}")
    rng = random.Random(seed)
    out, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= seconds:
            return out
        out.append(t)
