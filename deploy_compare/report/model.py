"""`results.json`: everything the report shows, as one typed aggregate (`ReportResults`).

The report is rendered from this aggregate only. `collect.collect(run_dir)` builds it from the
stage results saved in the run folder; the renderers never read a stage file themselves. Rows are
flat and already in display units (ms, MB, req/s) so the aggregate is readable on its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.environment import Environment
from core.results import StageTiming
from models.floor import GraphRatio  # the floor's own row: eager vs graph per framework, twin and threads

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
    """What changes a number (conventions rule 10), flattened for display."""

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
    shared_process: bool = False  # measured after other points in the same process (peak RSS not clean)
    error: str = ""  # the point failed: shown as invalid

    @property
    def label(self) -> str:
        return self.runtime if self.variant == "fp32" else f"{self.runtime} {self.variant}"


@dataclass
class TheanoRow:
    """The Theano row: Theano itself (why it cannot run) and its successor measured in its place."""

    theano_reason: str
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


@dataclass
class ServedParityRow:
    stack: str
    protocol: str
    model: str
    max_abs_error: float
    top1_agreement: float
    passed: bool


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
    repeats: int = 1
    intervals: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> median/ci_lo/ci_hi across repeats
    server_cpus: list[int] = field(default_factory=list)
    generator_cpus: list[int] = field(default_factory=list)


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


@dataclass
class ServerClientRow:
    """Where the time goes at one point: client-side latency vs the server's own accounting."""

    stack: str
    protocol: str
    model: str
    point: str  # which client requests the row averages
    client_mean_ms: float
    server_queue_ms: float | None
    server_inference_ms: float | None  # server time outside the queue (worker, handler, model)
    server_total_ms: float | None  # request time inside the server, queue included
    floor_p50_ms: float | None = None  # in-process floor for the same artifact at batch 1


@dataclass
class MemoryRow:
    what: str  # runtime or server
    kind: str  # in-process | server
    peak_rss_bytes: int


@dataclass
class Headroom:
    """Load generator against the null endpoint."""

    throughput: float  # req/s
    per_core: float | None  # req/s per core of generator CPU
    cpus: list[int]  # cores the generator was pinned to
    p50_ms: float | None
    generator_cpu: float | None = None  # fraction of one core
    fastest_server: float | None = None  # highest valid throughput measured on a real server
    ratio: float | None = None  # throughput / fastest_server
    note: str = ""


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
    quick: bool
    settings: SettingsView | None
    environment: Environment | None
    stages: list[StageTiming] = field(default_factory=list)
    comparison: list[ComparisonRow] = field(default_factory=list)
    models: list[ModelRow] = field(default_factory=list)
    artifacts: list[ArtifactRow] = field(default_factory=list)
    floor: list[FloorRow] = field(default_factory=list)
    harness_overhead: list[FloorRow] = field(default_factory=list)  # the null runtime
    graph_ratios: list[GraphRatio] = field(default_factory=list)
    theano: TheanoRow | None = None
    cold_start: list[ColdStartRow] = field(default_factory=list)
    served_parity: list[ServedParityRow] = field(default_factory=list)
    server_windows: list[ServerWindow] = field(default_factory=list)
    load_points: list[LoadPoint] = field(default_factory=list)
    server_client: list[ServerClientRow] = field(default_factory=list)
    memory: list[MemoryRow] = field(default_factory=list)
    headroom: Headroom | None = None
    not_run: list[NotRunRow] = field(default_factory=list)
    missing: list[MissingSection] = field(default_factory=list)

    def missing_for(self, section: str) -> list[MissingSection]:
        return [m for m in self.missing if m.section == section]

    def saturation(self) -> dict[tuple[str, str, str], LoadPoint | None]:
        """(stack, protocol, model) -> its closed-loop point of highest valid throughput (None: no valid point)."""
        out: dict[tuple[str, str, str], LoadPoint | None] = {}
        for p in sorted(self.load_points, key=lambda q: (q.stack, q.protocol, q.model)):
            if p.mode != "closed":
                continue
            key, best = (p.stack, p.protocol, p.model), out.get((p.stack, p.protocol, p.model))
            out[key] = best if not p.valid or (best is not None and best.throughput >= p.throughput) else p
        return out
