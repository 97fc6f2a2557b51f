"""Typed load-test results (saved as `loadtest.json` with `core.results.save`).

Statistics come from our own raw per-request samples (perf_counter, ms), never from locust's rounded
stats; the successful samples of every point are kept (rounded to 1 microsecond) so any other
percentile can be recomputed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.results import NotRun


@dataclass
class LatencySummary:
    stats: dict[str, float]  # n, mean, std, min, max, p50, p90, p99, p99.9 (ms), from raw samples
    backed: list[str]  # percentiles the sample count backs at 99% confidence (stats.backed_percentiles)


@dataclass
class GeneratorCpu:
    role: str  # local | master | worker
    cpu_fraction: float  # CPU time / wall time of the window (1.0 = one core busy)


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
    throughput_rps: float  # successful requests / window
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


@dataclass
class RepeatSummary:
    """Median and 95% interval across repeats of one load level (core.stats.repeat_interval)."""
    mode: str
    load: str  # "4 users" | "250 req/s"
    metrics: dict[str, dict[str, float]]  # throughput_rps / p99_ms / p50_ms -> repeat_interval(...)


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
    server_warmup: dict[str, Any] | None = None  # the excluded warm-up load before the first point

    def point_at_fraction(self, fraction: float) -> MeasuredPoint | None:
        """First valid open-loop point at `fraction` of saturation (e.g. 0.5 = 50% load)."""
        if not self.saturation_rps:
            return None
        want = fraction * self.saturation_rps
        for p in self.open_points:
            if p.valid and p.target_rate is not None and abs(p.target_rate - want) <= 0.01 * want:
                return p
        return None


@dataclass
class GeneratorHeadroom:
    """The generator against the null endpoint: the most it can send with recording on."""
    users: int
    throughput_rps: float
    generator_cpu_fraction: float
    rps_per_core: float  # throughput / generator CPU fraction
    generator_cpus: list[int]
    server_cpus: list[int]
    points: list[MeasuredPoint]
    note: str = ""


@dataclass
class LoadTestResults:
    profile: str
    label: str  # e.g. "quick profile: one repeat, ..." (shown with every figure)
    settings: dict[str, Any]  # LoadSettings as data
    locust_version: str
    headroom: GeneratorHeadroom | None
    endpoints: list[EndpointLoad] = field(default_factory=list)
    not_run: list[NotRun] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the load stage (headroom + every endpoint)
    headroom_ratio: float | None = None  # generator req/s per core / fastest saturation measured (want >= 5)
