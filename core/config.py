"""Profiles and run configuration: typed, validated without side effects.

A profile bundles every setting that changes a number; it is saved with the run (`config.json`)
so a reader can rerun any point. Each stage owns its own settings block.
No default here is captured at import time from the environment (cwd, CPU count, clock).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from deploy_compare.core.kinds import CpuIdle, FloorGrouping, ProfileKind, ServerLogging
from deploy_compare.core.stats import WindowPolicy


@dataclass(frozen=True)
class TrainSettings:
    """Training of the twins. Both frameworks get the same epochs, batch size, rate and threads."""
    # the three tiny twins, then the two that compute (models/zoo/mobilenet.py: untrained; transformer.py)
    twins: tuple[str, ...] = ("mlp", "cnn", "resnet", "mobilenet", "transformer")
    epochs: int = 15
    twin_epochs: tuple[tuple[str, int], ...] = ()  # per-twin overrides of `epochs`, e.g. (("resnet", 4),)
    batch_size: int = 32
    learning_rate: float = 1e-3  # Adam in both frameworks
    threads: int = 1  # TF intra/inter-op and PyTorch threads while training (see models/training.py)
    seed: int = 1234
    parity_batch: int = 64  # size of the fixed held-out batch used by every parity check

    def __post_init__(self) -> None:
        counts = {"epochs": self.epochs, "batch_size": self.batch_size, "threads": self.threads,
                  "parity_batch": self.parity_batch, **{f"twin_epochs[{t}]": e for t, e in self.twin_epochs}}
        bad = [f"{k}={v}" for k, v in counts.items() if v < 1]
        if not self.learning_rate > 0:
            bad.append(f"learning_rate={self.learning_rate}")
        if bad:
            raise ValueError(f"train settings must be positive: {', '.join(bad)}")

    def epochs_for(self, twin: str) -> int:
        return dict(self.twin_epochs).get(twin, self.epochs)


@dataclass(frozen=True)
class ExportSettings:
    """The export stage. Ahead-of-time compiles (AOTInductor: tens of seconds per model) and the cross-framework
    converters (each in its own venv, created once and cached) are what costs time here."""
    # exports left out, as fnmatch patterns over "<twin>/<exporter>"; each becomes a NotRun record
    exclude: tuple[str, ...] = ()


# the cross-framework converters (models/exporters/litert_torch.py, onnx2tf.py): their venvs take 6-9 min each to
# create here (once, then cached), beyond the quick profile's budget
CONVERTERS = ("*/litert-torch", "*/onnx2tf-*")


@dataclass(frozen=True)
class FloorSettings:
    """In-process runtime benchmarks."""
    window: WindowPolicy = WindowPolicy()  # batch-1 latency window (warm-up excluded)
    # batches > 1: throughput is a mean over the window, so fewer calls suffice than for a p99
    throughput_window: WindowPolicy = WindowPolicy(min_samples=100)
    batch_sizes: tuple[int, ...] = (1, 32)
    thread_counts: tuple[int, ...] = (1, 2)  # 1 = what a pinned server gets; 2 = all cores here
    repeats: int = 3
    grouping: FloorGrouping = FloorGrouping.ISOLATED
    pin_cpu: int = 0  # the core a threads=1 process is pinned to (os.sched_setaffinity)
    process_timeout_s: float = 900.0  # per measuring process
    max_raw_samples: int = 20000  # per window; beyond, samples are kept as an HDR histogram
    # threads=1 processes run at the same time, each pinned to its own core (1 = one process at a time)
    parallel_processes: int = 1
    # a process measuring several points (family grouping) measures their batch-1 windows in this many paired
    # rounds (each point's window shared among them, in a balanced rotating order; conventions rule 15), so
    # eager vs graph and format ratios are per-round ratios with intervals. 1: one window per point in turn
    rounds: int = 8
    # scope: twins measured (empty: every trained twin) and points left out, as fnmatch patterns over the
    # point label ("<twin>/<exporter>/<variant>" or "<twin>/<runtime>"); both become NotRun records
    twins: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    # the Theano row: install theano==1.0.5 into a throwaway venv and import it (needs the package index),
    # recording what happens; all its commands together stop at `theano_timeout_s`
    try_theano: bool = False
    theano_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.grouping not in FloorGrouping.__members__.values():
            raise ValueError(f"unknown floor grouping {self.grouping!r}; choose one of "
                             f"{', '.join(FloorGrouping)}")
        object.__setattr__(self, "grouping", FloorGrouping(self.grouping))
        if self.theano_timeout_s <= 0:
            raise ValueError(f"theano_timeout_s must be positive, not {self.theano_timeout_s}")


@dataclass(frozen=True)
class ServeSettings:
    """Servers. Settings recorded with every served result."""
    launcher: str = "auto"  # auto | native | docker | both (deploy_compare.core.kinds.LauncherChoice)
    workers: int = 1
    batch_size: int = 1
    max_batch_delay_ms: int = 5
    # every served model gets a worker process, all on the server's core: 21 for three twins x 7 served artifacts
    # (TensorFlow workers import TensorFlow); 7 mlp workers took 46 s to be ready on a loaded 2-core machine
    ready_timeout_s: float = 300.0
    stop_timeout_s: float = 20.0
    threads: int = 1  # intra-op threads per worker (= the in-process floor's 1-thread point) and netty threads
    pin_server_cpu: int | None = 0  # core the server is pinned to when the machine has >= 2 cores (None: no pin)
    fixed_ports: bool = False  # True: the servers' default ports (fail clearly if taken); False: free ports
    twins: tuple[str, ...] = ()  # twins to serve (empty: every twin in the manifest)
    # what to serve, as exporter names (serving/catalog.py SERVED_FORMATS, e.g. "onnx-tf"; empty: every row)
    formats: tuple[str, ...] = ()
    # served models left out, as fnmatch patterns over the served name "<twin>-<format>" (e.g. "resnet-aoti"): every
    # served model is one more worker process (a Python interpreter with torch) starting with the server
    exclude: tuple[str, ...] = ()
    allow_public_bind: bool = False  # allow a server that cannot bind 127.0.0.1 only (native TF Serving)
    # servers to run (empty: every server whose `Server.default_launchers` admit `launcher`: Ray Serve only with
    # `docker` or `both`, docs/ray-serve.md): e.g. ("torchserve", "tfserving", "rayserve")
    servers: tuple[str, ...] = ()
    # TorchServe's logging (core.kinds.ServerLogging): "serving" (access log, startup, warnings and errors; no
    # per-request debug lines, no gzip on the server's core: serving/torchserve/config.py) or "default"
    # (TorchServe's own log4j2.xml)
    server_logging: str = ServerLogging.SERVING


@dataclass(frozen=True)
class LoadSettings:
    """Load generation."""
    window: WindowPolicy = WindowPolicy()
    max_users: int = 64
    plateau_gain: float = 0.05  # stop the sweep after two steps each adding < 5% throughput
    slo_p99_ms: float = 200.0
    open_loop_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
    repeats: int = 3
    error_rate_threshold: float = 0.01
    generator_cpu_limit: float = 0.90
    late_send_ms: float = 1.0
    late_send_fraction_limit: float = 0.01
    seed: int = 4321
    twins: tuple[str, ...] = ()  # twins whose endpoints are load-tested (empty: every served endpoint)
    # artifact variants whose endpoints are load-tested; quantized ones (TFLite int8-dynamic, fp16) are served
    # and their parity reported in every profile, load-tested only where listed here
    variants: tuple[str, ...] = ("fp32",)
    # per twin, the served formats (exporter names) whose endpoints are load-tested (a twin not listed: all of
    # them), e.g. (("transformer", ("torchscript", "onnx-torch")),)
    twin_formats: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # endpoints left out, as fnmatch patterns over "<stack>/<protocol>" (e.g. "rayserve/tflite/*") or
    # "<stack>/<protocol>/<twin>" (e.g. "torchserve/*/grpc/transformer"); NotRun records
    exclude: tuple[str, ...] = ()
    # window of the null sweeps (None: `window`); the null endpoint gives thousands of samples per second
    headroom_window: WindowPolicy | None = None
    open_loop_connections: int = 64  # open loop: requests in flight at most; later sends wait for one
    drain_seconds: float = 10.0  # open loop: wait for outstanding requests after the last send
    workers: int = 0  # locust worker processes (0 = one generator process)
    # open loop only (None: `workers`). One process sends the full profile's rates: the raw senders keep
    # 1,000-1,300 req/s at a quarter of a core, and two workers plus a master on one core came late more
    # often (1.0-2.2% of sends over 1 ms against TorchServe's gRPC API at 1,150 req/s; one process:
    # 0.5-0.9%, before real-time scheduling)
    open_loop_workers: int | None = None
    # open loop: SCHED_FIFO priority of the sending processes while a point lasts, where the system allows
    # it (0: the normal policy); see `core.realtime` and `loadtests.modes.open.send_slice` for the figures
    open_loop_realtime_priority: int = 1
    # closed loop: each point's window as this many consecutive sub-windows, throughput = their median
    windows_per_point: int = 1
    # closed loop, with windows_per_point > 1: up to this many more sub-windows while the last
    # windows_per_point are not within point_tolerance of each other (max/min - 1 of throughput: Triton
    # perf_analyzer's stability rule); the point is then its last windows_per_point, the earlier ones are
    # recorded beside it. A server hiccup of a second or two (TorchServe here: sub-windows of 590, 719,
    # 1,394 req/s at one point of a quick run) otherwise decides the point's median and the stop rule.
    settle_windows: int = 0
    point_tolerance: float = 0.10
    # closed loop: the 1-user point's window lasts at least this long (0: `window` alone). Its p50 is the
    # scorecard's "served p50 at 1 user"; a warm TorchServe's p50 moves by ~4% between 2-3 s windows here,
    # so a short window alone cannot make two runs agree within 5%
    one_user_seconds: float = 0.0
    # before an endpoint's first point: load at `server_warmup_users` in windows of `server_warmup_window_seconds`
    # until `server_warmup_stable_windows` in a row agree within `server_warmup_tolerance` (Triton perf_analyzer's
    # stability rule), at most `server_warmup_seconds`; excluded from every figure. A freshly started TorchServe
    # (JVM frontend still compiling hot paths) is ~2x slower in its first seconds: the first endpoint measured
    # would otherwise pay for it. 0 s = no warm-up.
    server_warmup_seconds: float = 30.0
    server_warmup_users: int = 4
    server_warmup_window_seconds: float = 1.0
    server_warmup_stable_windows: int = 3
    server_warmup_tolerance: float = 0.10
    # ... and, where the server has JIT compiler threads (TorchServe's JVM), while they use at most this share
    # of a core in each of those windows: throughput can hold within 10% for 3 s while the compilers still
    # take 20-40% of the core (a fresh TorchServe here: 1,051-1,111 req/s at 4 users, then ~1,500 once they
    # stopped), and a warm-up that ended there left two quick runs 10-30% apart
    server_warmup_jit_cpu_limit: float = 0.03
    # what idle CPUs do while load is measured (core.kinds.CpuIdle, core/cpuidle.py): "poll" holds the kernel's
    # PM QoS latency at 0 so an idle vCPU spins instead of halting through the hypervisor (here: p50 at 1
    # user 0.575 vs 0.645 ms, 1-s windows spread 13% vs 20%); "default" leaves the kernel's choice
    cpu_idle: str = CpuIdle.POLL
    # paired rounds (conventions rule 15; `loadtests/paired.py`): at every closed-loop step, one window of every
    # endpoint still sweeping, in a balanced rotating order, for this many rounds (the step's figures are their
    # medians; the comparisons are per-round ratios). 8 rounds let an exact sign test reach p < 0.01 (its
    # smallest two-sided p is 2**(1 - n)); 0 = the sequential schedule (one sweep per endpoint per repeat, then
    # the next endpoint). `repeats` then counts the open loop's repeats only.
    paired_rounds: int = 8
    # the users of the paired steps (empty: 1, 2, 4, ... max_users with the stop rule); a fixed list runs every
    # step, and a sweep that never met the stop rule gives a lower bound of saturation
    paired_users: tuple[int, ...] = ()
    # each paired window (None: `window`); warm-up excluded before each, as for every point
    paired_window: WindowPolicy | None = None
    # each paired open-loop window (None: `window`)
    paired_open_window: WindowPolicy | None = None
    # the warm-up of every endpoint after the first of its server (None: `server_warmup_seconds`): the first
    # one warms the server's shared front end (TorchServe's JVM) until stable; the later ones warm their own
    # model worker, which the stability rule settles in a few seconds (a noisy one would take its whole bound)
    endpoint_warmup_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.paired_rounds < 0 or any(u < 1 for u in self.paired_users):
            raise ValueError(f"paired_rounds must be >= 0 and paired_users >= 1, got {self.paired_rounds}, "
                             f"{self.paired_users}")


@dataclass(frozen=True)
class Profile:
    name: ProfileKind
    train: TrainSettings = TrainSettings()
    export: ExportSettings = ExportSettings()
    floor: FloorSettings = FloorSettings()
    serve: ServeSettings = ServeSettings()
    load: LoadSettings = LoadSettings()
    note: str = ""

    @property
    def repeats(self) -> int:
        """Repeats per load point (the floor has its own, `floor.repeats`)."""
        return self.load.repeats

    @property
    def single_repeat(self) -> bool:
        """One repeat and short windows: figures without intervals, labelled as such in the report."""
        return self.load.repeats == 1 and self.floor.repeats == 1


# The quick floor of the computing twins: their fp32 artifacts and one eager and one graph runtime per framework.
# Left out: eager Keras and torch.compile (a 224x224 CNN's eager calls and inductor's compile take minutes on one
# loaded core: run q1 here timed out 5 of 15 PyTorch points at 300 s), quantized and tf2onnx variants, null.
COMPUTING_FLOOR_EXCLUDE = tuple(f"{twin}/{point}" for twin in ("mobilenet", "transformer") for point in (
    "keras-eager", "torch-compile", "null", "tflite/int8-dynamic", "tflite/fp16", "onnx-tf/*"))

QUICK = Profile(
    name=ProfileKind.QUICK,
    train=TrainSettings(epochs=8, twin_epochs=(("resnet", 3), ("transformer", 2))),
    # no converters (their venvs), no AOTInductor compile of the computing twins (not timed here yet)
    export=ExportSettings(exclude=(*CONVERTERS, "mobilenet/aoti", "transformer/aoti")),
    floor=FloorSettings(
        window=WindowPolicy(warmup_seconds=0.2, warmup_samples=10, min_seconds=0.3, min_samples=100,
                            max_seconds=20.0),
        throughput_window=WindowPolicy(warmup_seconds=0.1, warmup_samples=3, min_seconds=0.2, min_samples=10,
                                       max_seconds=20.0),
        thread_counts=(1,), repeats=1, grouping=FloorGrouping.FAMILY, parallel_processes=2,
        process_timeout_s=600.0, exclude=COMPUTING_FLOOR_EXCLUDE),
    # the twins that are load-tested: one worker per served artifact shares the server's core, so every twin's
    # seven would take minutes to start. The transformer's .pt2 formats are not served: an AOTI worker imports
    # torch._inductor and loads the package (11 s alone in a process here, 66 s inside TorchServe with 7 other
    # workers starting at load average ~20 on 2 cores)
    serve=ServeSettings(twins=("mlp", "transformer"), exclude=tuple(
        f"transformer-{f}*" for f in ("savedmodel", "tflite", "onnx", "torch-export", "aoti"))),
    load=LoadSettings(
        window=WindowPolicy(warmup_seconds=0.5, warmup_samples=10, min_seconds=2.0, min_samples=200,
                            max_seconds=20.0),
        max_users=8, open_loop_fractions=(0.5,), repeats=1, twins=("mlp", "transformer"), drain_seconds=5.0,
        twin_formats=(("transformer", ("torchscript",)),),
        paired_users=(1, 8),
        # gRPC of one format per column (the protocol comparison), REST of every format; Ray Serve (with
        # --launcher docker / both, or --servers rayserve: served, parity, cold start, memory) is not load-tested
        # in quick: at tens of ms per request here its 200-sample paired windows take up to 20 s each (a
        # --launcher both quick run's 1-user step alone took 4 min with two Ray endpoints)
        exclude=(*(f"torchserve/{f}/grpc" for f in ("tflite", "onnx-tf", "onnx-torch", "torch-export", "aoti")),
                 "torchserve/*/grpc/transformer", "rayserve/*"),
        paired_window=WindowPolicy(warmup_seconds=0.2, warmup_samples=10, min_seconds=0.3, min_samples=200,
                                   max_seconds=20.0),
        paired_open_window=WindowPolicy(warmup_seconds=0.2, warmup_samples=10, min_seconds=0.3, min_samples=200,
                                        max_seconds=20.0),
        server_warmup_seconds=40.0, endpoint_warmup_seconds=6.0, server_warmup_window_seconds=1.0,
        windows_per_point=3, settle_windows=3, one_user_seconds=6.0,
        headroom_window=WindowPolicy(warmup_seconds=0.3, warmup_samples=10, min_seconds=1.0, min_samples=200,
                                     max_seconds=20.0)),
    note="quick profile: no cross-framework converters (litert-torch, onnx2tf: their venvs take minutes "
         "to create), no AOTInductor compile of the computing twins; mlp served in every format, transformer in "
         "TorchScript; load-tested: mlp over REST in its seven fp32 formats and over gRPC as SavedModel and "
         "TorchScript (one format per column), transformer over REST as TorchScript (Ray Serve, served with "
         "--launcher docker/both, is not load-tested); the first endpoint of a server "
         "warms it until stable (at most 40 s), each later one its own worker (at most 6 s); 8 paired rounds at 1 "
         "and 8 users (every endpoint's 0.3 s windows of >= 200 samples interleaved in a balanced order: p99.9 and, "
         "below 459 samples, p99 are not backed at 99% confidence by one window), then 8 paired open-loop rounds at "
         "50% of each endpoint's saturation (0.3 s windows of >= 200 samples); in-process floor at 1 thread only "
         "with >= 100 calls per batch-1 point (backs p50 and p90 only), one process per runtime framework, two such "
         "processes at a time on separate cores; the computing twins (mobilenet, transformer) on their fp32 "
         "artifacts and the graph and PyTorch eager runtimes",
)

# The conventions' windows (>= 2 s warm-up, >= 10 s and >= 500 samples per point, 3 repeats) on a scope that
# took 36 min on 2 cores (run full1): every window is time-bound, so the cost is points x repeats x ~12 s.
FULL = Profile(
    name=ProfileKind.FULL,
    train=TrainSettings(twin_epochs=(("transformer", 3),)),
    floor=FloorSettings(twins=("mlp", "resnet", "mobilenet", "transformer"), thread_counts=(1,), parallel_processes=2,
                        try_theano=True,
                        exclude=("*/tflite/fp16", "*/tflite/int8-dynamic", "*/onnx-tf/*", "resnet/null")),
    # warm-ups up to 60 s: TorchServe's JVM compilers settled after 18-28 s at 4 users in runs j1-j3
    load=LoadSettings(twins=(), max_users=64, open_loop_fractions=(0.5, 0.9), server_warmup_seconds=60.0,
                      paired_window=WindowPolicy(warmup_seconds=2.0, warmup_samples=10, min_seconds=2.5,
                                                 min_samples=500, max_seconds=60.0)),
    note="full profile: 8 paired rounds per closed-loop step (2.5 s windows of >= 500 samples, 20 s per point "
         "in all), open loop with the conventions' windows (>= 10 s and >= 500 samples per point, 3 repeats, 95% "
         "intervals); "
         "scope kept to about 36 minutes on 2 cores: in-process floor for mlp and resnet at 1 thread (the servers' "
         "setting; two measuring processes at a time on separate cores) and of the computing twins mobilenet and "
         "transformer, fp32 artifacts without tf2onnx's, every "
         "eager and graph runtime, PyTensor and the null runtime once; load tests of every twin's endpoints "
         "(longer than the 36 minutes measured with mlp alone: not timed yet with all twins), 1 to 64 users "
         "(each sweep ends at its plateau), open-loop points at 50% and 90% of saturation. "
         "Everything else: --profile exhaustive",
)

# Everything: every twin, artifact and runtime at 1 and 2 threads, one fresh process per point, every
# endpoint, open loop at 25/50/75/90% of saturation. Hours on 2 cores.
EXHAUSTIVE = Profile(name=ProfileKind.EXHAUSTIVE, floor=FloorSettings(try_theano=True),
                     load=LoadSettings(variants=("fp32", "int8-dynamic", "fp16")),
                     note="exhaustive profile: every point, conventions' windows, 3 repeats")

PROFILES: dict[str, Profile] = {p.name: p for p in (QUICK, FULL, EXHAUSTIVE)}

@dataclass(frozen=True)
class ModelOptions:
    """A user's model in place of the zoo's twins (`deploy-compare run --model PATH`): see models/subjects/.
    The input comes from the model's own signature where it has one, else from `input_shape`/`input_dtype`
    (per sample, without the batch axis), or from the first rows of `sample` (a .npy batch)."""
    path: str  # a .keras file, a SavedModel folder, a .pt2 / TorchScript .pt file, an .onnx file, or module:factory
    name: str = ""  # the report's title and the model's key in every results file (default: from the path)
    input_shape: tuple[int, ...] = ()
    input_dtype: str = ""
    sample: str = ""  # a .npy file: the parity batch (else seeded random inputs, recorded as such)
    state_dict: str = ""  # module:factory only: a state dict loaded into the module
    output_kind: str = ""  # class-logits | token-logits | regression (default: guessed from the output shape)
    batch: int = 16  # rows of seeded random inputs when there is no sample

    def __post_init__(self) -> None:
        bad = [d for d in self.input_shape if d < 1]
        if bad or self.batch < 1:
            raise ValueError(f"--input-shape dimensions and the batch must be positive, got {self.input_shape} and "
                             f"{self.batch}")


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class RunConfig:
    profile: Profile
    run_id: str
    results_root: Path
    force: bool = False  # allow writing into an existing run folder
    stages: tuple[str, ...] = field(default_factory=tuple)  # empty = all
    model: ModelOptions | None = None  # a user's model in place of the twins (the train stage prepares it)

    def __post_init__(self) -> None:
        if not _RUN_ID.match(self.run_id):
            raise ValueError(f"run id {self.run_id!r} must match {_RUN_ID.pattern} (letters, digits, . _ -)")

    @property
    def run_dir(self) -> Path:
        return Path(self.results_root) / self.run_id


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
