"""The in-process floor: how fast each model runs inside one process, with no network (issue 3).

Stage `floor` (`run_stage(ctx)`) and command `deploy-compare floor RUN_DIR [--profile ...]`.

Points: per twin, every artifact in `manifest.json` (fp32 and quantized) through the runtime of its
format, plus the in-process runtimes of the trained twin (`keras-eager`, `keras-function`,
`torch-eager`, `torch-compile`), the `pytensor` graph (the Theano row; `profile.floor.pytensor_twins`)
and the `null` runtime (the harness's own overhead). Each point is measured at every thread count of
`profile.floor.thread_counts` (threads = 1 also pins the process to one core, `pin_cpu`), for
`profile.floor.repeats` repeats, by `models.floor_measure` in a fresh process (`proc.run_isolated`).

Grouping (`profile.floor.grouping`):
- `isolated` (full profile): one process per model x runtime x threads x repeat: load, first inference
  and peak RSS are clean, and each point pays its framework's import (`import_seconds`).
- `family` (quick profile): one process per runtime framework (tensorflow, litert, pytorch,
  onnxruntime, pytensor, none) x threads x repeat, measuring its points one after another. Steady-state
  figures are unaffected; `import_seconds` belongs to the first point of the process only, and peak RSS
  is the process's peak so far (`group_size` > 1 marks it).
Threads = 1 processes run up to `profile.floor.parallel_processes` at a time, each pinned to its own core
(quick: 2, full: 1); processes with more threads always run alone.

Saved to `run_dir.floor` (floor.json, a `FloorResults`), raw samples included, with the derived rows:
run-to-run spread of batch-1 p50 across repeats, the Computational-graph row (eager vs graph speed
ratios per framework) and the Theano row.
"""
from __future__ import annotations

import argparse
import fnmatch
import importlib
import importlib.util
import json
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import results, stats
from core.config import PROFILES, FloorSettings, get_profile
from core.results import Measurement, NotRun
from core.rundir import RunDir
from models.parity import ParityFigures, ParityTolerance

if TYPE_CHECKING:
    from rich.console import Console

    from core.context import RunContext
    from models.exporters.base import ArtifactRecord

# In-process runtimes of the trained twins (modules under models/runtimes/; importing registers them).
TWIN_RUNTIME_MODULES = ("keras_eager", "keras_function", "torch_eager", "torch_compile", "pytensor_graph", "null")
TWIN_RUNTIMES = ("keras-eager", "keras-function", "torch-eager", "torch-compile")
PYTENSOR = "pytensor"
NULL = "null"
# framework -> modules a runtime of it imports, when the runtime class does not say (`imports`)
FRAMEWORK_IMPORTS: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow",), "pytorch": ("torch",), "onnxruntime": ("onnxruntime",),
    "litert": ("ai_edge_litert.interpreter",), "pytensor": ("pytensor",), "none": (),
}
# The Computational-graph row: (framework, eager runtime, graph runtime); graph side at fp32.
GRAPH_PAIRS = (
    ("tensorflow", "keras-eager", "keras-function"),
    ("tensorflow", "keras-eager", "savedmodel"),
    ("pytorch", "torch-eager", "torchscript"),
    ("pytorch", "torch-eager", "torch-compile"),
)
# Checked on Python 3.11.7 / NumPy 2.4.6 with `pip install --target DIR theano==1.0.5` then `import theano`.
THEANO_IMPORT_ERROR = (
    "pip installs theano 1.0.5 (a pure-Python sdist, last release 2020), but `import theano` fails on Python "
    "3.11 / NumPy 2: its C lazy linker does not compile (lazylinker_ext/mod.cpp: error: 'PyInt_AsLong' was not "
    "declared in this scope, Python 2 C API), and with THEANO_FLAGS=cxx= (no C++) it fails in "
    "numpy.distutils BLAS detection (TypeError: Compiler.__init__() takes from 1 to 3 positional arguments but "
    "4 were given). Its maintained successor PyTensor is measured instead (runtime `pytensor`).")
THEANO_ENABLE = ("python3.8 -m venv theano-env && theano-env/bin/pip install theano==1.0.5 'numpy<1.20' "
                 "(an interpreter and NumPy from before 2021; not tried here)")


# ---------------------------------------------------------------- records

@dataclass(frozen=True)
class PointSpec:
    """What one point measures: a twin through a runtime, from a source under the run folder."""

    twin: str
    runtime: str
    framework: str
    source: str  # path relative to the run folder: an artifact, or the trained-twin folder
    format: str  # savedmodel | tflite | torchscript | onnx (artifacts) or "trained" (twin runtimes)
    variant: str = "fp32"  # fp32 | int8-dynamic | fp16 ...
    artifact: str | None = None  # manifest key of the artifact (None: a runtime of the trained twin)
    layout: str | None = None  # input layout of the artifact (None: the runtime declares it)

    @property
    def label(self) -> str:
        """Unique per twin: the artifact key (twin/exporter/variant), or twin/runtime for a trained twin."""
        return self.artifact or f"{self.twin}/{self.runtime}"

    def record(self, run_dir: RunDir) -> ArtifactRecord:
        from models.exporters.stage import load_manifest

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

    framework: str
    twin: str
    threads: int
    eager: str
    graph: str
    eager_p50_ms: float
    graph_p50_ms: float
    latency_ratio: float  # eager p50 / graph p50 at batch 1
    batch: int  # the larger batch of the throughput ratio
    throughput_ratio: float | None  # graph / eager samples per second at `batch`


@dataclass
class TheanoRow:
    theano: NotRun
    successor: str  # the runtime measured in its place
    twins: list[str]
    deployment: dict[str, str]  # export format / server: "none"
    graph_compile_seconds: dict[str, float]  # twin -> pytensor.function seconds (first repeat, 1 thread)
    p50_ms: dict[str, float]


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


# ---------------------------------------------------------------- runtimes

def import_runtime_modules() -> None:
    """Register every runtime: the artifact runtimes and the trained-twin runtimes (all import lazily)."""
    from models.runtimes.base import load_runtimes

    load_runtimes()
    for module in TWIN_RUNTIME_MODULES:
        importlib.import_module(f"models.runtimes.{module}")


def runtime_imports(cls: type) -> tuple[str, ...]:
    """Modules a runtime needs imported: its own `imports`, else its framework's."""
    declared = getattr(cls, "imports", None)
    return tuple(declared) if declared is not None else FRAMEWORK_IMPORTS.get(cls.framework, ())


# ---------------------------------------------------------------- planning

def plan_points(run_dir: RunDir, twins: Iterable[str], settings: FloorSettings) -> tuple[list[PointSpec], list[NotRun]]:
    """Every point of the floor, in twin order; artifacts whose format has no runtime become NotRun."""
    from models.exporters.stage import load_manifest
    from models.runtimes.base import FORMAT_RUNTIMES, RUNTIMES

    import_runtime_modules()
    manifest = load_manifest(run_dir)
    points: list[PointSpec] = []
    not_run: list[NotRun] = []
    twins = list(twins)
    out_of_scope = [t for t in twins if settings.twins and t not in settings.twins]
    not_run += [NotRun(what=f"floor/{t}", reason=f"twin {t} is outside this profile's floor scope "
                       f"(FloorSettings.twins = {', '.join(settings.twins)})",
                       enable_command=f"deploy-compare floor RUN_DIR --profile exhaustive --twins {t}")
                for t in out_of_scope]
    for twin in (t for t in twins if t not in out_of_scope):
        for rec in (r for r in manifest.artifacts if r.twin == twin):
            if rec.format not in FORMAT_RUNTIMES:
                not_run.append(NotRun(what=f"floor/{rec.key}", reason=f"no runtime registered for format "
                                      f"{rec.format!r}", enable_command="add a runtime module under models/runtimes/"))
                continue
            name = FORMAT_RUNTIMES.get(rec.format)
            points.append(PointSpec(twin=twin, runtime=name, framework=RUNTIMES.get(name).framework,
                                    source=rec.path, format=rec.format, variant=rec.variant, artifact=rec.key,
                                    layout=rec.layout))
        source = run_dir.twin_dir(twin).relative_to(run_dir.path).as_posix()
        names = list(TWIN_RUNTIMES) + ([PYTENSOR] if twin in settings.pytensor_twins else []) + [NULL]
        points += [PointSpec(twin=twin, runtime=n, framework=RUNTIMES.get(n).framework, source=source,
                             format="trained") for n in names]
    excluded = [p for p in points if any(fnmatch.fnmatchcase(p.label, pat) for pat in settings.exclude)]
    not_run += [NotRun(what=f"floor/{p.label}", reason="left out of this profile's floor scope (FloorSettings."
                       f"exclude = {', '.join(settings.exclude)})",
                       enable_command=f"deploy-compare floor RUN_DIR --profile exhaustive --twins {p.twin}")
                for p in excluded]
    return [p for p in points if p not in excluded], not_run


@dataclass(frozen=True)
class Group:
    name: str
    threads: int
    repeat: int
    points: tuple[PointSpec, ...]


def group_points(points: list[PointSpec], settings: FloorSettings) -> list[Group]:
    """Processes to start: per repeat and thread count, one per point (`isolated`) or per framework (`family`)."""
    if settings.grouping not in GROUPINGS:
        raise ValueError(f"unknown floor grouping {settings.grouping!r}; choose one of {', '.join(GROUPINGS)}")
    groups: list[Group] = []
    for repeat in range(settings.repeats):
        for threads in settings.thread_counts:
            if settings.grouping == "isolated":
                groups += [Group(p.label, threads, repeat, (p,)) for p in points]
                continue
            families: dict[str, list[PointSpec]] = {}
            for p in points:
                families.setdefault(p.framework, []).append(p)
            groups += [Group(f"{fw}", threads, repeat, tuple(ps)) for fw, ps in families.items()]
    return groups


GROUPINGS = {
    "isolated": "one fresh process per model x runtime x threads x repeat",
    "family": "one fresh process per runtime framework x threads x repeat, measuring its models in turn",
}


# ---------------------------------------------------------------- running

def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def core_slots(settings: FloorSettings) -> list[int]:
    """Cores a threads = 1 process may be pinned to: `pin_cpu` first, then the other allowed cores."""
    allowed = sorted(os.sched_getaffinity(0))
    first = settings.pin_cpu if settings.pin_cpu in allowed else allowed[0]
    return [first] + [c for c in allowed if c != first]


# Rough seconds per point by framework, to start the longest processes first when several run at once
# (torch.compile compiles per model and shape; Keras eager is slow per call; the rest is sub-second).
COST_HINT = {"pytorch": 4.0, "tensorflow": 2.0, "pytensor": 6.0}


def estimated_seconds(group: Group) -> float:
    return sum(COST_HINT.get(p.framework, 1.0) for p in group.points)


def run_group(group: Group, run_dir: RunDir, settings: FloorSettings, tolerance: ParityTolerance,
              cpus: set[int] | None, on_point: Any = None,
              concurrent: int = 1) -> tuple[list[FloorPoint], ProcessRecord]:
    """Measure a group in a fresh process; points the process did not finish become failed rows."""
    from core.proc import IsolatedError, run_isolated, stop_all

    safe = group.name.replace("/", "_").replace(" ", "_")
    progress = run_dir.logs / "floor" / f"{safe}-t{group.threads}-r{group.repeat}.jsonl"
    progress.parent.mkdir(parents=True, exist_ok=True)
    progress.unlink(missing_ok=True)
    request = MeasureRequest(run_dir=str(run_dir.path), group=group.name, threads=group.threads,
                             repeat=group.repeat, points=list(group.points), window=settings.window,
                             throughput_window=settings.throughput_window, batch_sizes=list(settings.batch_sizes),
                             tolerance=tolerance, max_raw_samples=settings.max_raw_samples,
                             progress=str(progress))
    done: list[FloorPoint] = []
    t0 = time.perf_counter()

    def poll() -> None:
        text = progress.read_text(encoding="utf-8") if progress.exists() else ""
        for line in text.split("\n")[:-1][len(done):]:  # complete lines only: the child may be mid-write
            done.append(results.from_json_data(FloorPoint, json.loads(line)))
            if on_point:
                on_point(done[-1])

    error: str | None = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(run_isolated, "models.floor_measure:measure_group", results.to_json_data(request),
                             timeout=settings.process_timeout_s, log_path=progress.with_suffix(".log"),
                             cpus=cpus, env=thread_env(group.threads))
        try:
            while not future.done():
                time.sleep(0.2)
                poll()
        except BaseException:  # Ctrl-C / SIGTERM: stop the measuring process(es) now, not at their timeout
            stop_all()
            raise
        try:
            future.result()
        except IsolatedError as exc:
            error = f"{exc}\n{exc.child_traceback}".strip()
    poll()
    record = ProcessRecord(group=group.name, threads=group.threads, repeat=group.repeat, points=len(group.points),
                           pinned_cpus=sorted(cpus) if cpus else None, seconds=time.perf_counter() - t0, error=error,
                           concurrent=concurrent)
    for spec in group.points[len(done):]:
        failed = FloorPoint(spec=spec, threads=group.threads, repeat=group.repeat, group=group.name,
                            group_size=len(group.points), position_in_group=len(done), ok=False,
                            error=f"the measuring process ended before this point: {error or 'no result'}")
        done.append(failed)
        if on_point:
            on_point(failed)
    return done, record


def run_groups(groups: list[Group], run_dir: RunDir, settings: FloorSettings, tolerance: ParityTolerance,
               on_point: Any) -> list[tuple[list[FloorPoint], ProcessRecord]]:
    """Run every group; results in group order. Threads = 1 groups run up to `parallel_processes` at a
    time, each pinned to its own core (longest first); groups with more threads run alone, unpinned."""
    import queue

    from core.proc import stop_all

    single = [g for g in groups if g.threads == 1]
    slots = core_slots(settings)[:max(1, settings.parallel_processes)]
    free: queue.Queue[int] = queue.Queue()
    for cpu in slots:
        free.put(cpu)

    def job(group: Group) -> tuple[list[FloorPoint], ProcessRecord]:
        cpu = free.get()
        try:
            return run_group(group, run_dir, settings, tolerance, {cpu}, on_point, concurrent=len(slots))
        finally:
            free.put(cpu)

    out: dict[int, tuple[list[FloorPoint], ProcessRecord]] = {}
    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        order = sorted(range(len(groups)), key=lambda i: -estimated_seconds(groups[i]))
        futures = {i: pool.submit(job, groups[i]) for i in order if groups[i] in single}
        try:
            for i, future in futures.items():
                out[i] = future.result()
        except BaseException:  # Ctrl-C: cancel what has not started, stop what runs
            pool.shutdown(wait=False, cancel_futures=True)
            stop_all()
            raise
    for i, group in enumerate(groups):
        if group.threads != 1:
            out[i] = run_group(group, run_dir, settings, tolerance, None, on_point)
    return [out[i] for i in range(len(groups))]


def measure(run_dir: RunDir, twins: Iterable[str], settings: FloorSettings, run_id: str, profile: str,
            console: Console) -> FloorResults:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    t0 = time.perf_counter()
    points, not_run = plan_points(run_dir, twins, settings)
    groups = group_points(points, settings)
    tolerance = ParityTolerance()
    total = sum(len(g.points) for g in groups)
    columns = (TextColumn("{task.description:<50}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("floor: starting", total=total)

        def on_point(p: FloorPoint) -> None:
            state = "ok" if p.ok else "FAILED"
            bar.update(task, advance=1, description=f"floor: {p.spec.label} t={p.threads} r={p.repeat} {state}")

        done = run_groups(groups, run_dir, settings, tolerance, on_point)
    measured = [p for points_done, _ in done for p in points_done]
    processes = [record for _, record in done]
    theano_twins = [t for t in twins if t in settings.pytensor_twins]
    return FloorResults(
        run_id=run_id, profile=profile, settings=settings,
        grouping=f"{settings.grouping}: {GROUPINGS[settings.grouping]}", points=measured,
        not_run=not_run + failed_not_run(measured), spread=spread_rows(measured), graph_ratios=graph_ratios(measured),
        theano=theano_row(measured, theano_twins), processes=processes, wall_seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------- derived rows

def failed_not_run(points: list[FloorPoint]) -> list[NotRun]:
    """One NotRun per point identity that failed (first error), with its runtime's enabling command."""
    from models.runtimes.base import RUNTIMES

    out: dict[str, NotRun] = {}
    for p in points:
        if p.ok or p.spec.label in out:
            continue
        cls = RUNTIMES.get(p.spec.runtime) if p.spec.runtime in RUNTIMES else None
        enable = getattr(cls, "enable_command", "") or f"deploy-compare floor RUN_DIR --twins {p.spec.twin} " \
                                                          "(after fixing the error; traceback in floor.json)"
        out[p.spec.label] = NotRun(what=f"floor/{p.spec.label}", reason=p.error or "failed", enable_command=enable)
    return list(out.values())


def _key(p: FloorPoint) -> tuple[str, str, str, str | None, int]:
    return (p.spec.twin, p.spec.runtime, p.spec.variant, p.spec.artifact, p.threads)


def spread_rows(points: list[FloorPoint]) -> list[SpreadRow]:
    """Batch-1 p50 across repeats per point identity (only identities measured in > 1 repeat)."""
    by_key: dict[tuple, list[FloorPoint]] = {}
    for p in points:
        by_key.setdefault(_key(p), []).append(p)
    rows = []
    for (twin, runtime, variant, artifact, threads), ps in by_key.items():
        if len({p.repeat for p in ps}) < 2:
            continue
        p50 = [p.p50_ms for p in sorted(ps, key=lambda q: q.repeat) if p.ok and p.p50_ms is not None]
        if p50:
            rows.append(SpreadRow(twin=twin, runtime=runtime, variant=variant, artifact=artifact, threads=threads,
                                  p50_ms=p50, interval=stats.repeat_interval(p50)))
    return rows


def _median_figure(points: list[FloorPoint], batch: int, figure: str) -> float | None:
    import numpy as np

    values = []
    for p in points:
        b = p.at(batch) if p.ok else None
        if b is not None:
            values.append(b.latency.stats["p50"] if figure == "p50" else b.throughput)
    return float(np.median(values)) if values else None


def graph_ratios(points: list[FloorPoint]) -> list[GraphRatio]:
    """The Computational-graph row: eager vs graph per framework, twin and thread count (median over repeats)."""
    index: dict[tuple[str, str, int], list[FloorPoint]] = {}
    for p in points:
        if p.spec.variant == "fp32":
            index.setdefault((p.spec.twin, p.spec.runtime, p.threads), []).append(p)
    rows = []
    for twin, threads in sorted({(k[0], k[2]) for k in index}):
        for framework, eager, graph in GRAPH_PAIRS:
            e, g = index.get((twin, eager, threads), []), index.get((twin, graph, threads), [])
            e50, g50 = _median_figure(e, 1, "p50"), _median_figure(g, 1, "p50")
            if e50 is None or g50 is None:
                continue
            big = max((b.batch for p in e + g for b in p.batches), default=1)
            e_thr, g_thr = _median_figure(e, big, "thr"), _median_figure(g, big, "thr")
            rows.append(GraphRatio(framework=framework, twin=twin, threads=threads, eager=eager, graph=graph,
                                   eager_p50_ms=e50, graph_p50_ms=g50, latency_ratio=e50 / g50, batch=big,
                                   throughput_ratio=(g_thr / e_thr) if e_thr and g_thr else None))
    return rows


def theano_not_run() -> NotRun:
    """Theano itself: checked in this environment each run (installed or not), reason as verified."""
    if importlib.util.find_spec("theano") is None:
        reason = f"theano is not installed in this environment. {THEANO_IMPORT_ERROR}"
    else:
        try:
            importlib.import_module("theano")
            reason = "theano imports here, but the floor measures its successor PyTensor (no Theano runtime module)"
        except Exception as exc:  # the real import error is the reason
            reason = f"theano is installed but `import theano` fails: {type(exc).__name__}: {exc}"
    return NotRun(what="theano", reason=reason, enable_command=THEANO_ENABLE)


def theano_row(points: list[FloorPoint], twins: list[str]) -> TheanoRow:
    compile_s: dict[str, float] = {}
    p50: dict[str, float] = {}
    for p in sorted(points, key=lambda q: (q.repeat, q.threads)):
        if p.spec.runtime != PYTENSOR or not p.ok:
            continue
        seconds = p.details.get("graph_compile_seconds")
        if isinstance(seconds, (int, float)):
            compile_s.setdefault(p.spec.twin, float(seconds))
        if p.p50_ms is not None:
            p50.setdefault(p.spec.twin, p.p50_ms)
    return TheanoRow(theano=theano_not_run(), successor=PYTENSOR, twins=twins,
                     deployment={"export_format": "none", "server": "none"}, graph_compile_seconds=compile_s,
                     p50_ms=p50)


# ---------------------------------------------------------------- output

def floor_table(floor: FloorResults, twin: str, threads: int) -> Any:
    from rich.table import Table

    big = max(floor.settings.batch_sizes)
    table = Table(title=f"floor: {twin}, {threads} thread(s), repeat 0 ({floor.profile} profile)")
    for col in ("runtime", "variant", "load s", "first s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "b1 /s",
                f"b{big} /s", "RSS MB", "max|err|"):
        table.add_column(col, justify="left" if col in ("runtime", "variant") else "right")
    for p in floor.points:
        if p.spec.twin != twin or p.threads != threads or p.repeat != 0:
            continue
        name = p.spec.runtime if not p.spec.artifact else f"{p.spec.runtime} ({p.spec.artifact.split('/')[1]})"
        if not p.ok:
            table.add_row(name, p.spec.variant, "[red]failed[/]", (p.error or "")[:60], *[""] * 8)
            continue
        b1, bb = p.at(1), p.at(big)
        s = b1.latency.stats if b1 else {}
        backed = set(b1.backed_percentiles) if b1 else set()

        def pct(name: str) -> str:
            return "" if name not in s else f"{s[name]:.3f}" + ("" if name in backed else "*")

        table.add_row(name, p.spec.variant, _fmt(p.load_seconds, 3), _fmt(p.first_inference_seconds, 4),
                      pct("p50"), pct("p90"), pct("p99"), pct("p99.9"), _fmt(b1.throughput if b1 else None, 0),
                      _fmt(bb.throughput if bb else None, 0),
                      _fmt(p.peak_rss_bytes / 2**20 if p.peak_rss_bytes else None, 0),
                      "n/a" if p.parity is None else f"{p.parity.max_abs_err:.1e}")
    table.caption = "* percentile not backed by the sample count at 99% confidence"
    return table


TABLE_WIDTH = 150


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def print_summary(floor: FloorResults, console: Console) -> None:
    from rich.console import Console

    wide = Console(file=console.file, width=max(console.width, TABLE_WIDTH))  # tables stay readable in logs
    for twin in dict.fromkeys(p.spec.twin for p in floor.points):
        for threads in floor.settings.thread_counts:
            wide.print(floor_table(floor, twin, threads))
    for r in floor.graph_ratios:
        thr = "" if r.throughput_ratio is None else f", throughput at b{r.batch} x{r.throughput_ratio:.2f}"
        console.print(f"graph vs eager ({r.framework}) {r.twin} t={r.threads}: {r.eager} {r.eager_p50_ms:.3f} ms / "
                      f"{r.graph} {r.graph_p50_ms:.3f} ms = x{r.latency_ratio:.2f}{thr}")
    for s in floor.spread:
        i = s.interval
        what = s.artifact or f"{s.twin}/{s.runtime}"
        console.print(f"spread {what} t={s.threads}: p50 median {i['median']:.3f} ms, "
                      f"95% CI [{i['ci_lo']:.3f}, {i['ci_hi']:.3f}] over {len(s.p50_ms)} repeats")
    failed = [p for p in floor.points if not p.ok]
    for proc in floor.processes:
        console.print(f"  process {proc.group} t={proc.threads} r={proc.repeat}: {proc.points} point(s), "
                      f"{proc.seconds:.1f} s, cpus {proc.pinned_cpus or 'all'}" + (" FAILED" if proc.error else ""))
    console.print(f"floor: {len(floor.points)} points in {len(floor.processes)} processes ({floor.grouping}), "
                  f"{len(failed)} failed, {floor.wall_seconds:.1f} s; saved with raw samples")


# ---------------------------------------------------------------- stage and command

def _twins(run_dir: RunDir) -> list[str]:
    from models.exporters.stage import load_manifest

    manifest = load_manifest(run_dir)
    return list(dict.fromkeys(r.twin for r in manifest.artifacts))


def run_stage(ctx: RunContext) -> None:
    settings = ctx.config.profile.floor
    twins = [t for t in ctx.config.profile.train.twins if t in _twins(ctx.run_dir)]
    floor = measure(ctx.run_dir, twins, settings, ctx.config.run_id, ctx.config.profile.name, ctx.console)
    results.save(floor, ctx.run_dir.floor)
    print_summary(floor, ctx.console)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a run folder holding trained twins and manifest.json")
    parser.add_argument("--profile", default="quick", choices=list(PROFILES), help="floor settings (default quick)")
    parser.add_argument("--twins", nargs="+", default=None, help="only these twins (default: all in the manifest)")
    parser.add_argument("--grouping", default=None, choices=list(GROUPINGS),
                        help="override the profile's process grouping")


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from core.errors import UserError

    run_dir = RunDir(args.run_dir.resolve())
    if not run_dir.manifest.exists():
        raise UserError(f"{run_dir.manifest} does not exist: run `deploy-compare run --stages train export parity` "
                        "for this run folder first")
    args.log_dir = run_dir.logs
    settings = get_profile(args.profile).floor
    if args.grouping:
        settings = replace(settings, grouping=args.grouping)
    known = _twins(run_dir)
    twins = args.twins or known
    unknown = [t for t in twins if t not in known]
    if unknown:
        raise UserError(f"twin(s) {', '.join(unknown)} have no artifacts in {run_dir.manifest}; "
                        f"known: {', '.join(known)}")
    console = Console(stderr=True)
    floor = measure(run_dir, twins, settings, run_dir.path.name, args.profile, console)
    results.save(floor, run_dir.floor)
    print_summary(floor, console)
    console.print(f"saved {run_dir.floor}")
    return 0
