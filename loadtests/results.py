"""Typed load-test results (saved as `loadtest.json` with `deploy_compare.core.results.save`).

Statistics come from our own raw per-request samples (perf_counter, ms), never from locust's rounded
stats; the successful samples of every point are kept (rounded to 1 microsecond) so any other
percentile can be recomputed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from deploy_compare.core.cpuidle import CpuIdleRecord
from deploy_compare.core.results import NotRun
from deploy_compare.core.stats import PairedRatio


@dataclass
class LatencySummary:
    stats: dict[str, float]  # n, mean, std, min, max, p50, p90, p95, p99, p99.9 (ms), from raw samples
    backed: list[str]  # percentiles the sample count backs at 99% confidence (stats.backed_percentiles)


@dataclass
class GeneratorCpu:
    role: str  # local | master | worker
    cpu_fraction: float  # CPU time / wall time of the window (1.0 = one core busy)
    scheduling: str = ""  # open loop: the sending threads' scheduling policy (e.g. "SCHED_FIFO 1")


@dataclass
class HarnessShare:
    """The generator against the null endpoint at this point's concurrency: its own latency, which is
    inside every figure it measures (the null endpoint answers in microseconds)."""
    users: int  # the null closed-loop step used (open loop: the point's mean requests in flight, rounded up)
    p50_ms: float
    mean_ms: float
    p99_ms: float
    basis: str  # how the null step was chosen


@dataclass
class MeasuredPoint:
    mode: str  # closed | open
    users: int | None  # closed loop
    target_rate: float | None  # open loop, req/s
    repeat: int
    duration_s: float  # measurement window (warm-up excluded)
    count: int  # successful requests in the window
    errors: dict[str, int]  # kind -> count: http_<code>, grpc_<STATUS>, transport exception names, unfinished
    error_rate: float
    throughput_rps: float  # successful requests / window (several sub-windows: their median, see window_rps)
    latency_ms: LatencySummary | None  # closed: response time; open: completion - SCHEDULED send (corrected)
    samples_ms: list[float]  # raw successful latencies (ms, 1 us resolution); open: the corrected ones
    generator_cpu: list[GeneratorCpu]
    valid: bool
    invalid_reasons: list[str] = field(default_factory=list)
    error_flag: bool = False  # error rate above the profile's threshold
    warmup_count: int = 0
    # open loop only
    uncorrected_ms: LatencySummary | None = None  # completion - actual send (after a free connection)
    lateness_ms: LatencySummary | None = None  # dispatch - scheduled send (the generator's own delay)
    late_fraction: float = 0.0  # share of sends more than late_send_ms late
    scheduled: int = 0
    window_rps: list[float] = field(default_factory=list)  # closed: each sub-window's throughput (if several)
    # closed: sub-windows measured before the point's sub-windows agreed (perf_analyzer's rule), not in its
    # figures: their throughput and requests
    settling_rps: list[float] = field(default_factory=list)
    settling_count: int = 0
    # the generator's own latency at this point's concurrency, protocol and payload (null endpoint)
    harness: HarnessShare | None = None
    warnings: list[str] = field(default_factory=list)  # caveats that do not invalidate (e.g. headroom < 5x)
    # share of a core the server's JIT compiler threads used during the window (server warm-up windows;
    # None: not watched, or the server has none)
    server_jit_cpu: float | None = None
    # wall-clock bounds of the measurement window (the server-side accounting of this point is read from
    # the metrics scrapes inside them)
    window_start_unix: float | None = None
    window_end_unix: float | None = None
    # paired rounds: share of a core each server NOT measured in this window used during it (label -> share;
    # they should idle: a busy one says the window was not alone on the machine)
    idle_servers_cpu: dict[str, float] = field(default_factory=dict)

    @property
    def load(self) -> str:
        return f"{self.users} users" if self.mode == "closed" else f"{self.target_rate:.0f} req/s"


@dataclass
class Sweep:
    """One closed-loop concurrency sweep (one repeat)."""
    repeat: int
    points: list[MeasuredPoint]
    stop_reason: str
    saturation_users: int | None
    saturation_rps: float | None  # highest valid throughput with p99 within the SLO
    stop_kind: str = ""  # deploy_compare.loadtests.rules.StopKind: plateau | slo | last_step | no_success | error
    saturated: bool = False  # stop_kind is plateau or slo: saturation_rps was seen, not a lower bound


@dataclass
class RepeatSummary:
    """Median and 95% interval across repeats of one load level (deploy_compare.core.stats.repeat_interval)."""
    mode: str
    load: str  # "4 users" | "250 req/s"
    metrics: dict[str, dict[str, float]]  # throughput_rps / p99_ms / p50_ms -> repeat_interval(...)


@dataclass
class Saturation:
    """What the closed-loop sweeps found: "saturates at X req/s (N users)" only when a plateau or the SLO
    was reached in every repeat; otherwise X is a lower bound ("at least")."""
    found: bool
    rps: float | None  # median over repeats of the sweeps' best valid throughput within the SLO
    users: int | None  # users at that point (of the median repeat)
    max_users: int  # the last step the sweeps reached
    stop_kinds: list[str]  # per repeat (deploy_compare.loadtests.rules.StopKind)
    stop_reasons: list[str]  # per repeat, as written by the sweep
    label: str  # the sentence to show


@dataclass
class ServerWarmup:
    """Load before an endpoint's first measured point, excluded from every figure, until stable."""
    users: int
    window_seconds: float
    windows_rps: list[float]  # throughput of each warm-up window
    stable: bool  # the last `stable_windows` windows were within `tolerance` of each other (and JIT-quiet)
    stable_windows: int
    tolerance: float
    seconds: float  # wall time the warm-up took (locust start included)
    max_seconds: float  # its bound
    excluded: bool = True
    # share of a core the server's JIT compiler threads used in each window (None: the server has none)
    windows_jit_cpu: list[float | None] = field(default_factory=list)
    jit_cpu_limit: float | None = None  # the most they may use in each stable window (None: not watched)


def endpoint_label(stack: str, protocol: str, model: str, launcher: str = "") -> str:
    """How an endpoint is named in the stage's order and in its paired comparisons."""
    return f"{stack} {protocol} ({model})" + (f" [{launcher}]" if launcher else "")


_LABEL = re.compile(r"^(?P<stack>\S+) (?P<protocol>\S+) \((?P<model>[^)]+)\)(?: \[(?P<launcher>[^\]]+)\])?$")


def label_parts(label: str) -> tuple[str, str, str, str] | None:
    """`endpoint_label`'s inverse: (stack, protocol, model, launcher), or None for another text."""
    m = _LABEL.match(label)
    return (m["stack"], m["protocol"], m["model"], m["launcher"] or "") if m else None


def one_factor_apart(a: str, b: str) -> bool:
    """Whether two endpoint labels differ in exactly one of stack, protocol, launcher (same model): the
    comparisons that isolate one choice (a format, a protocol, a container)."""
    pa, pb = label_parts(a), label_parts(b)
    if pa is None or pb is None or pa[2] != pb[2]:
        return False
    return sum(x != y for x, y in zip((pa[0], pa[1], pa[3]), (pb[0], pb[1], pb[3]))) == 1


@dataclass
class EndpointLoad:
    endpoint: dict[str, Any]  # Endpoint.describe(): no secrets
    status: str  # ok | failed
    failure: str | None
    payload: dict[str, Any]
    generator_cpus: list[int]  # cores the load generator was pinned to ([] = not pinned)
    workers: int  # locust worker processes (0 = one process)
    sweeps: list[Sweep] = field(default_factory=list)
    open_points: list[MeasuredPoint] = field(default_factory=list)
    saturation_rps: float | None = None  # median over sweeps
    saturation_interval: dict[str, float] | None = None  # repeat_interval over sweeps (>= 2 repeats)
    repeat_summaries: list[RepeatSummary] = field(default_factory=list)
    server_warmup: ServerWarmup | None = None  # the excluded warm-up load before the first point
    saturation: Saturation | None = None  # found or lower bound, with the stop reasons
    order: list[int] = field(default_factory=list)  # position of this endpoint in each repeat's order (0-based)


@dataclass
class GeneratorHeadroom:
    """One protocol's generator capacity, measured against its null endpoint by a closed-loop sweep
    run until the generator saturates (or the sweep ends), and its ratio to the fastest real endpoint
    of that protocol (`deploy_compare.loadtests.headroom.apply_headrooms` computes it; everything else reads it)."""
    protocol: str  # rest | grpc
    twin: str | None  # payload: the twin's held-out batch
    capacity_rps: float  # the sweep's highest throughput (generator capacity, measured at saturation)
    capacity_users: int
    generator_cpu_fraction: float  # at the capacity point (1.0 = one core)
    saturated: bool  # generator CPU >= its limit or a throughput plateau was seen
    limited_by: str  # what ended the climb, in words
    generator_cpus: list[int]
    server_cpus: list[int]
    points: list[MeasuredPoint]  # the null sweep, also the harness-share table (same user steps as endpoints)
    fastest_rps: float | None = None  # fastest measured saturation (or lower bound) of a real endpoint
    fastest_endpoint: str | None = None
    ratio: float | None = None  # capacity_rps / fastest_rps
    min_ratio: float = 5.0  # below it every point of this protocol carries a warning


@dataclass
class ReferenceSample:
    """One sample of the machine reference (`loadtests/reference.py`): its fixed loop for 1 s."""
    before: str  # what was measured next (an endpoint's label), or "end of the load stage"
    unix: float  # when the sample started
    count: int
    seconds: float
    rps: float
    p50_ms: float


@dataclass
class MachineReference:
    loop: str  # what was measured (the same every time)
    server_cpus: list[int]
    generator_cpus: list[int]
    samples: list[ReferenceSample] = field(default_factory=list)
    failure: str | None = None  # why sampling stopped (the stage goes on without it)

    @property
    def spread(self) -> float | None:
        """How far the machine moved over the stage: max / min - 1 of the samples' throughput."""
        rates = [s.rps for s in self.samples if s.rps > 0]
        return max(rates) / min(rates) - 1 if len(rates) >= 2 else None


@dataclass
class LoadTestResults:
    profile: str
    label: str  # e.g. "quick profile: one repeat, ..." (shown with every figure)
    settings: dict[str, Any]  # LoadSettings as data
    locust_version: str
    headrooms: list[GeneratorHeadroom] = field(default_factory=list)  # one per protocol (and payload) measured
    endpoints: list[EndpointLoad] = field(default_factory=list)
    not_run: list[NotRun] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the load stage (headroom + every endpoint)
    order: list[list[str]] = field(default_factory=list)  # per repeat: the endpoints' order of measurement
    cpu_idle: CpuIdleRecord | None = None  # what idle CPUs did during the stage (core/cpuidle.py)
    # the machine's own speed before each endpoint's points and at the end (loadtests/reference.py)
    reference: MachineReference | None = None
    # paired rounds (`loadtests/paired.py`): rounds per closed-loop step (0: endpoints one after another) and
    # the per-round ratios of every two endpoints of one model measured side by side, with their intervals
    paired_rounds: int = 0
    comparisons: list[PairedRatio] = field(default_factory=list)
