"""`results.json`: everything the report shows, as one typed aggregate (`ReportResults`).

The report is rendered from this aggregate only. `collect.collect(run_dir)` builds it from the
stage results saved in the run folder; the renderers never read a stage file themselves. Rows are
flat and already in display units (ms, MB, req/s) so the aggregate is readable on its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deploy_compare.core.cpuidle import CpuIdleRecord
from deploy_compare.core.environment import Environment
from deploy_compare.core.results import StageTiming
from deploy_compare.core.stats import PairedRatio
from deploy_compare.loadtests.results import MachineReference
from deploy_compare.models.floor import (
    GraphRatio,  # the floor's own row: eager vs graph per framework, twin and threads
)
from deploy_compare.serving.metrics import CounterSample

FRAMEWORKS = ("TensorFlow", "Keras", "Theano", "PyTorch")


@dataclass
class Cell:
    """One cell of the comparison table: the seed study's claim and, when this run measured it, evidence."""

    claim: str  # the seed study's claim, in our words
    measured: list[str] = field(default_factory=list)  # evidence lines from this run (empty = not measured)
    link: str = ""  # section anchor holding the figures
    status: str = "not measured"  # measured | not measured | missing (the run was meant to measure it but did not)
    gaps: list[str] = field(default_factory=list)  # results files that would add evidence but are missing


@dataclass
class ComparisonRow:
    feature: str
    cells: dict[str, Cell]  # framework (FRAMEWORKS) -> cell


@dataclass
class SettingsView:
    """What changes a number (versions, threads, workers, batching, placement), flattened for display."""

    run_id: str
    profile: str
    profile_note: str
    repeats_floor: int
    repeats_load: int
    floor_threads: list[int]
    floor_batches: list[int]
    floor_window: str
    load_window: str
    serve: dict[str, str]  # launcher, workers, batching, CPU placement... (served settings as recorded)
    model: str = ""  # a user's model (`run --model`): its name, the report's title


@dataclass
class ModelRow:
    twin: str
    framework: str
    dataset: str
    params: int
    accuracy: float | None
    train_seconds: float | None
    epochs: int | None
    note: str = ""
    flops: int | None = None  # per inference at batch 1 (models.json)


@dataclass
class ArtifactRow:
    key: str  # manifest key twin/exporter/variant
    twin: str
    format: str
    variant: str
    framework: str
    bytes: int
    export_seconds: float
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    top1_agreement: float | None = None
    accuracy: float | None = None
    parity: str = "not checked"  # pass | fail | reported (quantized) | not checked
    parity_note: str = ""  # the failing figure or the runtime error
    converter: str = ""  # cross-framework conversion: the converter and its version; "" = the framework's own
    compile_seconds: float | None = None  # ahead-of-time compile (AOTInductor)

    @property
    def exporter(self) -> str:
        return self.key.split("/")[1]


@dataclass
class LatencyStats:
    """Latency percentiles in milliseconds from raw samples; `backed` = percentiles the count can back."""

    n: int
    p50: float
    p90: float
    p99: float
    p999: float
    mean: float
    backed: list[str] = field(default_factory=list)
    p95: float | None = None  # None: the results file was written before p95 was recorded


@dataclass
class FloorRow:
    twin: str
    runtime: str  # registry name: savedmodel, tflite, torchscript, onnxruntime, keras-eager, torch-eager, ...
    framework: str  # framework the model came from: tensorflow | pytorch | pytensor | none
    format: str  # artifact format run (savedmodel, tflite, torchscript, onnx) or "eager"/"graph" for live models
    variant: str  # fp32 | int8-dynamic | fp16
    threads: int
    batch: int
    load_seconds: float | None
    first_seconds: float | None
    latency: LatencyStats | None
    throughput: float | None  # samples/s
    peak_rss_bytes: int | None
    repeats: int = 1  # repeats behind the spread columns
    p50_median_ms: float | None = None  # batch-1 p50 across repeats (median and 95% interval of the mean)
    p50_ci_ms: tuple[float, float] | None = None
    p50_cv: float | None = None  # batch-1 p50 across repeats: sample standard deviation / mean
    shared_process: bool = False  # measured after other points in the same process (peak RSS not clean)
    error: str = ""  # the point failed: shown as invalid
    artifact: str = ""  # manifest key of the artifact run ("" for a trained twin's runtime)
    converter: str = ""  # the artifact is a cross-framework conversion by this converter
    point: str = ""  # the floor's point label (twin/exporter/variant or twin/runtime): its paired comparisons' name

    @property
    def label(self) -> str:
        runtime = f"{self.runtime} ({self.converter.split()[0]})" if self.converter else self.runtime
        return runtime if self.variant == "fp32" else f"{runtime} {self.variant}"


@dataclass
class TheanoRow:
    """The Theano row: Theano itself (what this run's attempt did) and its successor measured in its place."""

    theano_reason: str
    outcome: str  # the stored attempt in one phrase: not tried / imported / the failure (models.floor.theano)
    successor: str  # e.g. pytensor
    compile_seconds: dict[str, float] = field(default_factory=dict)  # twin -> graph compile seconds
    p50_ms: dict[str, float] = field(default_factory=dict)  # twin -> batch-1 p50
    deployment: dict[str, str] = field(default_factory=dict)  # export format / server -> "none"

    @property
    def measured(self) -> bool:
        return bool(self.p50_ms)


@dataclass
class ColdStartRow:
    server: str
    stack: str
    model: str
    start_to_ready_s: float | None
    model_load_s: float | None
    first_request_ms: float | None
    steady_p50_ms: float | None
    source: str = ""  # where model load time came from (metrics, log)
    launcher: str = ""  # native: process start -> ready; docker: container create -> ready
    started_by: str = ""  # where the ready clock starts ("process start", "container create")


@dataclass
class ServedParityRow:
    stack: str
    protocol: str
    model: str
    max_abs_error: float
    top1_agreement: float
    passed: bool
    launcher: str = ""
    gated: bool = True  # False: a quantized variant, its figures reported, never gated


@dataclass
class WorkerMemoryRow:
    """One served model's worker process (TorchServe: the Python process running its handler)."""

    server: str
    launcher: str
    served_name: str
    stack: str
    model: str  # twin
    phase: str  # ready | after <stage>
    rss_bytes: int
    peak_rss_bytes: int


@dataclass
class LoadPoint:
    """One load point (closed loop: users; open loop: target rate) as the report shows it."""

    stack: str
    protocol: str
    model: str
    mode: str  # closed | open
    users: int | None
    target_rate: float | None
    throughput: float  # completed req/s
    latency: LatencyStats
    uncorrected: LatencyStats | None = None  # open loop: from actual send time
    late_fraction: float | None = None  # open loop: sends more than late_send_ms late
    errors: int = 0
    error_rate: float = 0.0
    generator_cpu: float | None = None  # fraction of one core, peak or mean during the window
    valid: bool = True
    invalid_reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # caveats that do not invalidate (settling, headroom)
    repeats: int = 1
    intervals: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> median/ci_lo/ci_hi across repeats
    server_cpus: list[int] = field(default_factory=list)
    generator_cpus: list[int] = field(default_factory=list)
    launcher: str = ""  # native | docker (the endpoint's launcher)
    scheduling: str = ""  # open loop: the sending threads' scheduling policy, as each process recorded it
    harness_mean_ms: float | None = None  # the generator's own mean latency at this concurrency (null endpoint)
    harness_p50_ms: float | None = None
    window_unix: tuple[float, float] | None = None  # the measurement window's wall-clock bounds
    server: dict[str, float] = field(default_factory=dict)  # the server's per-request means over this window
    server_requests: float | None = None  # requests the server counted between the samples used
    # how the server figures were taken when not from two samples inside the window (a paired window shorter
    # than two sampling periods: the scrapes just before and after it, its warm-up included)
    server_note: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.stack, self.protocol, self.model, self.launcher)


@dataclass
class SaturationRow:
    """What an endpoint's closed-loop sweeps found, as stored by the load stage."""

    stack: str
    protocol: str
    model: str
    launcher: str
    found: bool  # a plateau or the SLO ended every sweep: "saturates at"; else a lower bound
    rps: float | None
    users: int | None
    max_users: int | None  # the last step the sweeps reached
    stop_kinds: list[str] = field(default_factory=list)
    stop_reasons: list[str] = field(default_factory=list)
    interval: dict[str, float] | None = None  # across repeats
    # the server warm-up before the endpoint's first point as the load stage stored it (loadtests.results.
    # ServerWarmup; excluded from every figure)
    warmup: dict[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.stack, self.protocol, self.model, self.launcher)


@dataclass
class TaxComponent:
    name: str
    ms: float  # >= 0, mean per request
    source: str  # which figures it comes from


@dataclass
class TaxBreakdown:
    """Where one point's mean client latency goes: generator, outside the server, queue, worker, inference."""

    stack: str
    protocol: str
    model: str
    launcher: str
    point: str  # "1 user", "4 users, 52% of saturation", ...
    client_mean_ms: float
    components: list[TaxComponent]
    unaccounted_ms: float  # client mean - sum of components (>= 0); overlap_ms holds the other sign
    overlap_ms: float = 0.0  # nested figures that exceeded their whole (a part larger than it), removed
    floor_p50_ms: float | None = None
    server_requests: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def accounted_ms(self) -> float:
        return sum(c.ms for c in self.components)

    @property
    def adds_up(self) -> bool:
        """Components within 10% of the client's mean."""
        return abs(self.client_mean_ms - self.accounted_ms) <= 0.10 * self.client_mean_ms


@dataclass
class ServerWindow:
    """A server's own counters over one endpoint's whole load window (all its load points, warm-ups included)."""

    server: str
    stack: str
    protocol: str
    model: str  # served name
    seconds: float
    requests: float | None  # requests the server counted in the window
    total_ms: float | None  # mean request time inside the server (TorchServe: from receipt to response, queue included)
    queue_ms: float | None  # mean time queued before a worker took it
    error: str = ""
    launcher: str = ""
    series: list[CounterSample] = field(default_factory=list)  # the counters sampled during the window
    sample_interval_s: float | None = None  # the sampler's period (None: not recorded)


@dataclass
class MemoryRow:
    what: str  # runtime or server
    kind: str  # in-process | server
    peak_rss_bytes: int
    server: str = ""  # server rows: which server and launcher
    launcher: str = ""
    cgroup_bytes: int | None = None  # container launcher: the container's cgroup memory figure


@dataclass
class ScoreRow:
    """One row of the scorecard: a served stack (server/format, protocol, twin, launcher)."""

    stack: str
    protocol: str
    model: str
    launcher: str
    artifact_bytes: int | None
    floor_p50_ms: float | None
    served_p50_ms: float | None  # closed loop, 1 user
    tax_ms: float | None  # served p50 at 1 user - in-process p50
    saturation: SaturationRow | None
    ready_s: float | None
    model_load_s: float | None
    first_request_ms: float | None
    memory_bytes: int | None  # server peak RSS (or the container's cgroup figure)
    memory_source: str = ""
    framework: str = ""  # the artifact's source framework (tensorflow | pytorch), whichever server serves it
    runtime: str = ""  # the in-process runtime that runs the same artifact (the worker runs it the same way)
    worker_bytes: int | None = None  # this model's own worker process: peak RSS over the sampled phases


@dataclass
class Headroom:
    """Load generator against the null endpoint, per protocol, as the load stage stored it (never recomputed)."""

    throughput: float  # req/s: the generator's capacity
    per_core: float | None  # req/s per core of generator CPU (older results only)
    cpus: list[int]  # cores the generator was pinned to
    p50_ms: float | None
    generator_cpu: float | None = None  # fraction of one core
    fastest_server: float | None = None  # the fastest real endpoint's figure the ratio divides by
    ratio: float | None = None  # as stored by the load stage
    note: str = ""
    protocol: str = ""  # "" = one headroom for every protocol (older results)


@dataclass
class NotRunRow:
    source: str  # results file it came from
    what: str
    reason: str
    enable_command: str


@dataclass
class MissingSection:
    """A section whose results file is absent or unreadable: shown, never silently dropped."""

    section: str
    file: str
    reason: str
    enable_command: str
    unreadable: bool = False  # the file exists but does not hold what its stage's dataclass expects

    @property
    def note(self) -> str:
        state = "could not be read" if self.unreadable else "is missing"
        return f"`{self.file}` {state}: {self.reason}. Produce it with `{self.enable_command}`."


@dataclass
class ReportResults:
    run_id: str
    single_repeat: bool  # the profile runs one repeat per point: no intervals, labelled so (any profile name)
    settings: SettingsView | None
    environment: Environment | None
    stages: list[StageTiming] = field(default_factory=list)
    comparison: list[ComparisonRow] = field(default_factory=list)
    models: list[ModelRow] = field(default_factory=list)
    artifacts: list[ArtifactRow] = field(default_factory=list)
    floor: list[FloorRow] = field(default_factory=list)
    harness_overhead: list[FloorRow] = field(default_factory=list)  # the null runtime
    graph_ratios: list[GraphRatio] = field(default_factory=list)
    floor_comparisons: list[PairedRatio] = field(default_factory=list)  # floor points side by side (paired rounds)
    theano: TheanoRow | None = None
    cold_start: list[ColdStartRow] = field(default_factory=list)
    served_parity: list[ServedParityRow] = field(default_factory=list)
    server_windows: list[ServerWindow] = field(default_factory=list)
    load_points: list[LoadPoint] = field(default_factory=list)
    memory: list[MemoryRow] = field(default_factory=list)
    workers: list[WorkerMemoryRow] = field(default_factory=list)  # per served model's worker process
    headrooms: list[Headroom] = field(default_factory=list)  # one per protocol when the load stage stored them
    cpu_idle: CpuIdleRecord | None = None  # what idle CPUs did during the load stage (None: not recorded)
    floor_cpu_idle: CpuIdleRecord | None = None  # ... during the floor (None: not recorded, an older run)
    reference: MachineReference | None = None  # the machine's own speed over the load stage (None: not recorded)
    saturations: list[SaturationRow] = field(default_factory=list)
    # endpoints measured side by side (paired rounds): per-round ratios with their intervals, and the rounds
    comparisons: list[PairedRatio] = field(default_factory=list)
    paired_rounds: int = 0
    tax: list[TaxBreakdown] = field(default_factory=list)
    scorecard: list[ScoreRow] = field(default_factory=list)
    launchers: list[str] = field(default_factory=list)  # launchers the servers ran under in this run
    not_run: list[NotRunRow] = field(default_factory=list)
    missing: list[MissingSection] = field(default_factory=list)

    def missing_for(self, section: str) -> list[MissingSection]:
        return [m for m in self.missing if m.section == section]
