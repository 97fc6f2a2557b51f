"""What the floor saves (floor.json, a `FloorResults`) and what crosses into a measuring process
(`MeasureRequest`): typed dataclasses that round-trip through JSON (`deploy_compare.core.results`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from deploy_compare.core import stats
from deploy_compare.core.config import FloorSettings
from deploy_compare.core.cpuidle import CpuIdleRecord
from deploy_compare.core.kinds import ArtifactFormat, Layout, RuntimeFamily
from deploy_compare.core.results import Measurement, NotRun
from deploy_compare.core.rundir import RunDir
from deploy_compare.models.parity import ParityFigures, ParityTolerance

if TYPE_CHECKING:
    from deploy_compare.models.exporters.base import ArtifactRecord

TRAINED = "trained"  # PointSpec.format of a runtime that runs the trained twin, not an artifact
# set to the thread count in a measuring process's environment, and recorded with every point
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass(frozen=True)
class PointSpec:
    """What one point measures: a twin through a runtime, from a source under the run folder."""

    twin: str
    runtime: str
    framework: RuntimeFamily  # the runtime's library: the `family` grouping's process
    source: str  # path relative to the run folder: an artifact, or the trained-twin folder
    format: ArtifactFormat | Literal["trained"]
    variant: str = "fp32"  # fp32 | int8-dynamic | fp16 ...
    artifact: str | None = None  # manifest key of the artifact (None: a runtime of the trained twin)
    layout: Layout | None = None  # input layout of the artifact (None: the runtime declares it)
    converter: str = ""  # a cross-framework conversion's converter ("onnx2tf 1.29.24"); "" = the framework's own

    def __post_init__(self) -> None:  # plain strings become the enum members (and unknown values fail here)
        object.__setattr__(self, "framework", RuntimeFamily(self.framework))
        object.__setattr__(self, "format", self.format if self.format == TRAINED else ArtifactFormat(self.format))
        object.__setattr__(self, "layout", None if self.layout is None else Layout(self.layout))

    @property
    def label(self) -> str:
        """Unique per twin: the artifact key (twin/exporter/variant), or twin/runtime for a trained twin."""
        return self.artifact or f"{self.twin}/{self.runtime}"

    def record(self, run_dir: RunDir) -> ArtifactRecord:
        from deploy_compare.models.exporters.stage import load_manifest

        manifest = load_manifest(run_dir)
        for rec in manifest.artifacts:
            if rec.key == self.artifact:
                return rec
        raise KeyError(f"artifact {self.artifact!r} is not in {run_dir.manifest}")


@dataclass
class MeasureRequest:
    """Payload of one measuring process."""

    run_dir: str
    group: str
    threads: int
    repeat: int
    points: list[PointSpec]
    window: stats.WindowPolicy
    throughput_window: stats.WindowPolicy
    batch_sizes: list[int]
    tolerance: ParityTolerance  # the gate's, applied to fp32 points
    max_raw_samples: int
    progress: str  # JSONL file the process appends finished points to
    rounds: int = 1  # > 1: the batch-1 windows of the process's points in paired rounds (models/floor/measure.py)


@dataclass
class BatchFigures:
    batch: int
    latency: Measurement  # per call, ms, raw samples kept
    throughput: float  # samples per second = batch x calls / window seconds
    calls: int
    warmup_calls: int
    window_seconds: float
    backed_percentiles: list[str]  # percentiles the call count backs at 99% confidence
    # when calls > max_raw_samples: the samples as a base64 HdrHistogram of ns (3 significant digits),
    # latency.samples then empty (statistics are still computed from every raw sample)
    histogram: str | None = None


@dataclass
class FloorPoint:
    spec: PointSpec
    threads: int
    repeat: int
    group: str  # the process that measured it
    group_size: int  # points measured by that process (1 = the point had a fresh process to itself)
    position_in_group: int
    ok: bool
    error: str | None = None
    traceback: str | None = None
    cpus: list[int] = field(default_factory=list)  # CPU affinity of the process
    thread_settings: dict[str, int] = field(default_factory=dict)  # as set by the runtime
    env_threads: dict[str, str] = field(default_factory=dict)
    details: dict[str, float | str] = field(default_factory=dict)  # runtime-specific (compile seconds, ...)
    imported: list[str] = field(default_factory=list)
    import_seconds: float | None = None  # framework import in this process (None: imported before)
    load_seconds: float | None = None
    first_inference_seconds: float | None = None
    parity: ParityFigures | None = None  # vs logits_ref on the held-out batch (None: null runtime / failed)
    batches: list[BatchFigures] = field(default_factory=list)
    peak_rss_bytes: int | None = None  # of the process so far: clean only when group_size == 1
    rss_bytes: int | None = None  # resident set after the point
    notes: list[str] = field(default_factory=list)
    # batch-1 p50 of each paired round (ms; empty: one window), in round order: the paired ratios' figures
    round_p50_ms: list[float] = field(default_factory=list)

    def at(self, batch: int) -> BatchFigures | None:
        return next((b for b in self.batches if b.batch == batch), None)

    @property
    def p50_ms(self) -> float | None:
        b1 = self.at(1)
        return b1.latency.stats["p50"] if b1 else None


@dataclass
class SpreadRow:
    """Run-to-run spread of batch-1 p50 across repeats (median and 95% interval of the mean)."""

    twin: str
    runtime: str
    variant: str
    artifact: str | None
    threads: int
    p50_ms: list[float]  # one per successful repeat
    interval: dict[str, float]


@dataclass
class GraphRatio:
    """Eager vs graph execution of one framework on one twin: > 1 means graph mode is faster."""

    framework: RuntimeFamily
    twin: str
    threads: int
    eager: str
    graph: str
    eager_p50_ms: float
    graph_p50_ms: float
    latency_ratio: float  # eager p50 / graph p50 at batch 1
    batch: int  # the larger batch of the throughput ratio
    throughput_ratio: float | None  # graph / eager samples per second at `batch`
    # eager / graph batch-1 p50 per paired round (measured side by side in one process), with its intervals;
    # None: the two were measured in separate processes, one after another (no ranking is stated then)
    paired: stats.PairedRatio | None = None

    def __post_init__(self) -> None:
        self.framework = RuntimeFamily(self.framework)


@dataclass
class CommandStep:
    """One command of an attempt, as it ran here."""

    name: str
    argv: list[str]
    exit_code: int | None  # None: stopped at the time limit
    seconds: float
    output_tail: str  # last lines of its stdout + stderr
    log: str  # the full output
    summary: str = ""  # the error line and the first compiler errors, from the full output


@dataclass
class TheanoAttempt:
    """Theano 1.0.5 installed into a throwaway venv and imported, as this run saw it."""

    requirement: str
    ok: bool  # `import theano` succeeded
    steps: list[CommandStep]
    versions: dict[str, str]  # python, pip, theano, numpy, scipy in that venv ("-": not installed)
    seconds: float
    timeout_s: float


@dataclass
class TheanoRow:
    theano: NotRun
    successor: str  # the runtime measured in its place
    twins: list[str]
    deployment: dict[str, str]  # export format / server: "none"
    graph_compile_seconds: dict[str, float]  # twin -> pytensor.function seconds (first repeat, 1 thread)
    p50_ms: dict[str, float]
    attempt: TheanoAttempt | None = None  # None: not tried in this profile (FloorSettings.try_theano)


@dataclass
class ProcessRecord:
    """One measuring process: what it measured and its wall time (start to exit, import included)."""

    group: str
    threads: int
    repeat: int
    points: int
    pinned_cpus: list[int] | None  # None: the parent's affinity (all cores)
    seconds: float
    error: str | None = None
    concurrent: int = 1  # measuring processes running at the same time (each on its own core)


@dataclass
class FloorResults:
    run_id: str
    profile: str
    settings: FloorSettings
    grouping: str  # how points were grouped into processes
    points: list[FloorPoint]
    not_run: list[NotRun]
    spread: list[SpreadRow]
    graph_ratios: list[GraphRatio]
    theano: TheanoRow
    processes: list[ProcessRecord]
    wall_seconds: float
    # what idle CPUs did while the floor was measured: the load stage's policy (core/cpuidle.py), so that the
    # serving tax subtracts a floor measured under the same conditions as the served figures (None: older runs)
    cpu_idle: CpuIdleRecord | None = None
    # every two points of one twin and thread count measured side by side in the same processes: the per-round
    # ratio of batch-1 p50 (`derived.floor_comparisons`)
    comparisons: list[stats.PairedRatio] = field(default_factory=list)
