"""The floor's measuring side: runs inside a fresh process (`deploy_compare.core.proc.run_isolated`, started by
`deploy_compare.models.floor.schedule`).

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

from deploy_compare.core import results, stats
from deploy_compare.core.kinds import RuntimeFamily
from deploy_compare.core.proc import peak_rss_bytes
from deploy_compare.core.rundir import RunDir
from deploy_compare.models.floor.schema import THREAD_VARS, BatchFigures, FloorPoint, MeasureRequest, PointSpec
from deploy_compare.models.heldout import HeldoutBatch
from deploy_compare.models.parity import ParityTolerance, compare_batch, predict_all
from deploy_compare.models.runtimes.base import RUNTIMES, load_runtimes, runtime_for
from deploy_compare.models.training import load_heldout

LATENCY_UNIT = "ms"


class ParityFailure(RuntimeError):
    pass


def measure_group(payload: dict[str, Any]) -> int:
    """Measure every point of `payload` (a MeasureRequest as JSON data); returns the number measured. With
    `rounds` > 1 and several points, their batch-1 windows are paired rounds (`_measure_paired`)."""
    request = results.from_json_data(MeasureRequest, payload)
    load_runtimes()
    progress = Path(request.progress)
    cpus = sorted(os.sched_getaffinity(0))

    def write(point: FloorPoint) -> None:
        with progress.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(results.to_json_data(point)) + "\n")

    if request.rounds > 1 and len(request.points) > 1:
        for point in _measure_paired(request, cpus):
            write(point)
        return len(request.points)
    for index, spec in enumerate(request.points):
        point = _new_point(request, spec, cpus, index)
        _guarded(point, lambda p=point, sp=spec: _measure(request, sp, p))
        write(point)
    return len(request.points)


def _new_point(request: MeasureRequest, spec: PointSpec, cpus: list[int], index: int) -> FloorPoint:
    return FloorPoint(spec=spec, threads=request.threads, repeat=request.repeat, group=request.group,
                      group_size=len(request.points), position_in_group=index, ok=False, cpus=cpus,
                      env_threads={k: os.environ.get(k, "") for k in THREAD_VARS})


def _guarded(point: FloorPoint, step: Any) -> Any:
    """Run `step`; an exception becomes the point's failure (a failed row with its reason, never dropped)."""
    try:
        out = step()
        point.ok = point.error is None
        return out
    except Exception as exc:
        point.ok = False
        point.error = f"{type(exc).__name__}: {exc}"
        point.traceback = traceback.format_exc(limit=6)
        return None
    finally:
        point.peak_rss_bytes = peak_rss_bytes()
        point.rss_bytes = _current_rss()


def round_policy(window: stats.WindowPolicy, rounds: int) -> stats.WindowPolicy:
    """One round's batch-1 window: the point's window shared among `rounds` (time and count), each round with
    its own warm-up (excluded) after the other runtimes ran."""
    return stats.WindowPolicy(warmup_seconds=window.warmup_seconds / rounds, warmup_samples=window.warmup_samples,
                              min_seconds=window.min_seconds / rounds,
                              min_samples=max(7, -(-window.min_samples // rounds)), max_seconds=window.max_seconds)


def _measure_paired(request: MeasureRequest, cpus: list[int]) -> list[FloorPoint]:
    """Every point loaded and parity-checked first (all stay loaded in this process), then the batch-1
    windows in `rounds` rounds, one short window per point per round in a balanced rotating order
    (`stats.balanced_order`), so that a drift of the machine falls on every point of the process alike; each
    point's batch-1 figures are all its rounds' samples, its per-round p50 is kept (`round_p50_ms`) for the
    paired ratios. Then each point's larger batches, one after another."""
    points = [_new_point(request, spec, cpus, i) for i, spec in enumerate(request.points)]
    ready = {i: r for i, p in enumerate(points)
             if (r := _guarded(p, lambda p=p: _prepare(request, p.spec, p))) is not None}
    policy = round_policy(request.window, request.rounds)
    windows: dict[int, list[stats.WindowResult]] = {i: [] for i in ready}
    for r in range(request.rounds):
        for i in stats.balanced_order(sorted(ready), r):
            runtime, x, _ = ready[i]
            x1 = np.ascontiguousarray(x[:1])
            w = _guarded(points[i], lambda rt=runtime, x1=x1: stats.measure_window(lambda: rt.predict(x1), policy))
            if w is None:
                ready.pop(i)
                continue
            windows[i].append(w)
            points[i].round_p50_ms.append(float(np.median(w.samples)) * 1e3)
    for i, (runtime, x, caps) in ready.items():
        ws = windows[i]
        joined = stats.WindowResult(samples=[s for w in ws for s in w.samples],
                                    warmup_count=sum(w.warmup_count for w in ws),
                                    window_seconds=sum(w.window_seconds for w in ws))
        points[i].batches.append(_figures(1, joined, request.max_raw_samples))
        points[i].notes.append(f"batch 1 measured in {len(ws)} paired rounds with the other points of its process "
                               f"(windows of >= {policy.min_seconds:.3g} s and {policy.min_samples} calls)")
        _guarded(points[i], lambda i=i, rt=runtime, x=x, caps=caps: _batches(request, points[i], rt, x, caps))
    return points



def _measure(request: MeasureRequest, spec: PointSpec, point: FloorPoint) -> None:
    runtime, x, caps = _prepare(request, spec, point)
    x1 = np.ascontiguousarray(x[:1])
    window = stats.measure_window(lambda: runtime.predict(x1), request.window)
    point.batches.append(_figures(1, window, request.max_raw_samples))
    _batches(request, point, runtime, x, caps)


def _batches(request: MeasureRequest, point: FloorPoint, runtime: Any, x: np.ndarray, caps: Any) -> None:
    """Throughput (and per-call latency) at each batch size above 1."""
    for batch in request.batch_sizes:
        if batch == 1:
            continue
        if not caps.dynamic_batch:
            point.notes.append(f"batch {batch} not measured: {point.spec.runtime} has a fixed batch size")
            continue
        xb = np.ascontiguousarray(x[np.arange(batch) % len(x)])
        window = stats.measure_window(lambda: runtime.predict(xb), request.throughput_window)
        point.batches.append(_figures(batch, window, request.max_raw_samples))


def _prepare(request: MeasureRequest, spec: PointSpec, point: FloorPoint) -> tuple[Any, np.ndarray, Any]:
    """Import (timed), load (timed), first inference (timed) and parity: (runtime, the held-out batch in its
    layout, its capabilities)."""
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
    held = load_heldout(run_dir, spec.twin)
    layout = caps.layout if caps.layout != "any" else (spec.layout or held.layout)
    x = held.input_in(layout)  # float32, or the integer ids a token model takes
    x1 = np.ascontiguousarray(x[:1])
    t0 = time.perf_counter()
    runtime.predict(x1)
    point.first_inference_seconds = time.perf_counter() - t0

    if runtime.framework != RuntimeFamily.NONE:  # the null runtime computes nothing to compare
        _parity(runtime, caps.dynamic_batch, x, held, spec, request.tolerance, point)
    return runtime, x, caps


def _parity(runtime: Any, dynamic_batch: bool, x: np.ndarray, held: HeldoutBatch, spec: PointSpec,
            tolerance: ParityTolerance, point: FloorPoint) -> None:
    """The gate's comparison (`models.parity.compare`); fp32 points are gated, quantized ones reported."""
    got = predict_all(runtime, dynamic_batch, x)
    point.parity = compare_batch(got, held, tolerance if spec.variant == "fp32" else None)
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
