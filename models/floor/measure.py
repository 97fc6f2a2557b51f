"""The floor's measuring side: runs inside a fresh process (`core.proc.run_isolated`, started by
`models.floor.schedule`).

`measure_group(payload)` measures one or more points (model x runtime) at one thread setting, in order,
and appends each finished point as one JSON line to the payload's `progress` file (so the parent can
advance its progress bar and keep finished points if the process dies later). Per point:

1. import the runtime's framework (timed: `import_seconds`; None when an earlier point of the same
   process already imported it),
2. `load` (timed), first inference at batch 1 (timed),
3. parity on the twin's held-out batch against `logits_ref`: an fp32 point beyond the gate's tolerance
   or below 100% top-1 agreement is failed and not timed; quantized points report their error,
4. steady state at batch 1 (`stats.measure_window`, warm-up excluded): latency samples and throughput,
5. throughput (and per-call latency) at each larger batch size, with the throughput window policy,
6. peak RSS of the process (clean only when the point had its process to itself).

A point that raises becomes a failed row with the error; the group goes on with the next point.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from core import results, stats
from core.kinds import RuntimeFamily
from core.proc import peak_rss_bytes
from core.rundir import RunDir
from models.data import to_layout
from models.floor.schema import THREAD_VARS, BatchFigures, FloorPoint, MeasureRequest, PointSpec
from models.parity import ParityTolerance, compare
from models.runtimes.base import RUNTIMES, load_runtimes, runtime_for
from models.training import load_heldout
from models.zoo import get_twin

LATENCY_UNIT = "ms"


class ParityFailure(RuntimeError):
    pass


def measure_group(payload: dict[str, Any]) -> int:
    """Measure every point of `payload` (a MeasureRequest as JSON data); returns the number measured."""
    request = results.from_json_data(MeasureRequest, payload)
    load_runtimes()
    progress = Path(request.progress)
    cpus = sorted(os.sched_getaffinity(0))
    for index, spec in enumerate(request.points):
        point = _measure_or_fail(request, spec, cpus, index)
        with progress.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(results.to_json_data(point)) + "\n")
    return len(request.points)


def _measure_or_fail(request: MeasureRequest, spec: PointSpec, cpus: list[int], index: int) -> FloorPoint:
    point = FloorPoint(spec=spec, threads=request.threads, repeat=request.repeat, group=request.group,
                       group_size=len(request.points), position_in_group=index, ok=False, cpus=cpus,
                       env_threads={k: os.environ.get(k, "") for k in THREAD_VARS})
    try:
        _measure(request, spec, point)
        point.ok = True
    except Exception as exc:  # recorded as a failed row with its reason, never dropped
        point.error = f"{type(exc).__name__}: {exc}"
        point.traceback = traceback.format_exc(limit=6)
    point.peak_rss_bytes = peak_rss_bytes()
    point.rss_bytes = _current_rss()
    return point



def _measure(request: MeasureRequest, spec: PointSpec, point: FloorPoint) -> None:
    run_dir = RunDir(Path(request.run_dir))
    modules = [m for m in RUNTIMES.get(spec.runtime).imports if m not in sys.modules]
    if modules:
        t0 = time.perf_counter()
        for module in modules:
            importlib.import_module(module)
        point.import_seconds = time.perf_counter() - t0
        point.imported = modules

    runtime = runtime_for(spec.record(run_dir)) if spec.artifact else RUNTIMES.get(spec.runtime)()
    t0 = time.perf_counter()
    runtime.load(run_dir.path / spec.source, request.threads)
    point.load_seconds = time.perf_counter() - t0
    point.thread_settings = dict(getattr(runtime, "threads", {}) or {"requested": request.threads})
    point.details = dict(getattr(runtime, "details", {}) or {})

    caps = runtime.capabilities()
    twin_layout = get_twin(spec.twin).keras_layout
    held = load_heldout(run_dir, spec.twin)
    layout = caps.layout if caps.layout != "any" else (spec.layout or twin_layout)
    x = to_layout(held["x"].astype(np.float32), twin_layout, layout)
    x1 = np.ascontiguousarray(x[:1])
    t0 = time.perf_counter()
    runtime.predict(x1)
    point.first_inference_seconds = time.perf_counter() - t0

    if runtime.framework != RuntimeFamily.NONE:  # the null runtime computes nothing to compare
        _parity(runtime, caps.dynamic_batch, x, held, spec, request.tolerance, point)

    window = stats.measure_window(lambda: runtime.predict(x1), request.window)
    point.batches.append(_figures(1, window, request.max_raw_samples))
    for batch in request.batch_sizes:
        if batch == 1:
            continue
        if not caps.dynamic_batch:
            point.notes.append(f"batch {batch} not measured: {spec.runtime} has a fixed batch size")
            continue
        xb = np.ascontiguousarray(x[np.arange(batch) % len(x)])
        window = stats.measure_window(lambda: runtime.predict(xb), request.throughput_window)
        point.batches.append(_figures(batch, window, request.max_raw_samples))


def _parity(runtime: Any, dynamic_batch: bool, x: np.ndarray, held: dict[str, np.ndarray], spec: PointSpec,
            tolerance: ParityTolerance, point: FloorPoint) -> None:
    """The gate's comparison (`models.parity.compare`); fp32 points are gated, quantized ones reported."""
    if dynamic_batch:
        got = np.asarray(runtime.predict(x))
    else:
        got = np.concatenate([np.asarray(runtime.predict(x[i:i + 1])) for i in range(len(x))])
    point.parity = compare(got, held["logits_ref"], held["y"], tolerance if spec.variant == "fp32" else None)
    if not point.parity.passed:
        raise ParityFailure(f"{spec.runtime} on {spec.twin} ({spec.source}) does not compute the reference "
                            f"function: {point.parity.failure}; not timed")


def _figures(batch: int, window: stats.WindowResult, max_raw: int) -> BatchFigures:
    """Figures of one window; statistics from every raw sample. Past `max_raw` samples (sub-microsecond
    runtimes collect hundreds of thousands per second) the samples are kept as an HDR histogram instead."""
    ms = [s * 1e3 for s in window.samples]
    keep = len(ms) <= max_raw
    return BatchFigures(
        batch=batch,
        latency=results.Measurement(name=f"latency_b{batch}", unit=LATENCY_UNIT, higher_is_better=False,
                                    samples=ms if keep else [], stats=stats.summarize(ms)),
        throughput=batch * len(window.samples) / window.window_seconds, calls=len(window.samples),
        warmup_calls=window.warmup_count, window_seconds=window.window_seconds,
        backed_percentiles=stats.backed_percentiles(len(window.samples)),
        histogram=None if keep else hdr_encode(window.samples))


def hdr_encode(seconds: list[float]) -> str:
    """Samples (seconds) as a base64 HdrHistogram of nanoseconds, 3 significant digits (<= 0.1% error)."""
    from hdrh.histogram import HdrHistogram

    hist = HdrHistogram(1, HDR_MAX_NS, 3)
    ns = np.clip(np.rint(np.asarray(seconds) * 1e9), 1, HDR_MAX_NS).astype(np.int64)
    values, counts = np.unique(ns, return_counts=True)  # one record call per distinct value
    for value, count in zip(values.tolist(), counts.tolist()):
        hist.record_value(value, count)
    return hist.encode().decode("ascii")


HDR_MAX_NS = 100 * 10**9


def _current_rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)
