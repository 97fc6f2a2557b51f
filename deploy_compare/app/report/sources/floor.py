"""The in-process floor: floor.json (runtime benchmarks, eager vs graph, the Theano/PyTensor row)."""
from __future__ import annotations

import statistics
from pathlib import Path

from deploy_compare.app.report.model import FloorRow, LatencyStats, ReportResults, TheanoRow
from deploy_compare.app.report.sources import source
from deploy_compare.core import results
from deploy_compare.core.stats import median_items


def latency_stats(m: results.Measurement, backed: list[str] | None = None) -> LatencyStats:
    """A `Measurement` in ms -> the report's latency row (percentiles as computed from the raw samples)."""
    from deploy_compare.core.stats import backed_percentiles

    if m.unit not in ("ms", "s"):
        raise ValueError(f"latency measurement {m.name!r} has unit {m.unit!r}; expected ms or s")
    scale = 1e3 if m.unit == "s" else 1.0
    st = m.stats
    n = int(st.get("n", len(m.samples)))
    return LatencyStats(n=n, p50=st["p50"] * scale, p90=st["p90"] * scale, p99=st["p99"] * scale,
                        p999=st["p99.9"] * scale, mean=st["mean"] * scale,
                        backed=list(backed) if backed is not None else backed_percentiles(n),
                        p95=st["p95"] * scale if "p95" in st else None)


def _p50(point) -> float:
    b1 = next((b for b in point.batches if b.batch == 1 and b.latency is not None), None)
    return b1.latency.stats["p50"] if point.ok and b1 is not None else float("inf")


def median_repeats(points: list) -> list:
    """Per point identity (twin, runtime, variant, artifact, threads) the repeat with the median batch-1 p50
    (failed repeats sort last)."""
    return median_items(points, key=lambda p: (p.spec.twin, p.spec.runtime, p.spec.variant, p.spec.artifact,
                                               p.threads), rank=_p50)


@source("floor.json", "floor", "floor")
def floor(path: Path, res: ReportResults) -> list[results.NotRun]:
    from deploy_compare.models.floor import FloorResults, theano

    fl = results.load(FloorResults, path)
    framework_of = {a.key: a.framework for a in res.artifacts}
    spread = {(s.twin, s.runtime, s.variant, s.artifact, s.threads): s for s in fl.spread}
    for p in median_repeats(fl.points):  # one row per point identity; the spread columns hold all repeats
        spec = p.spec
        sp = spread.get((spec.twin, spec.runtime, spec.variant, spec.artifact, p.threads))
        base = dict(twin=spec.twin, runtime=spec.runtime,
                    framework=framework_of.get(spec.artifact or "", spec.framework),
                    format=spec.format, variant=spec.variant, threads=p.threads, load_seconds=p.load_seconds,
                    first_seconds=p.first_inference_seconds, peak_rss_bytes=p.peak_rss_bytes,
                    shared_process=p.group_size > 1, error="" if p.ok else (p.error or "failed"),
                    artifact=spec.artifact or "", converter=spec.converter,
                    point=spec.label)
        if sp is not None:
            base.update(repeats=len(sp.p50_ms), p50_median_ms=sp.interval.get("median"),
                        p50_ci_ms=(sp.interval["ci_lo"], sp.interval["ci_hi"]) if len(sp.p50_ms) > 1 else None,
                        p50_cv=statistics.stdev(sp.p50_ms) / statistics.mean(sp.p50_ms)
                        if len(sp.p50_ms) > 1 and statistics.mean(sp.p50_ms) > 0 else None)
        rows = [FloorRow(batch=b.batch, latency=latency_stats(b.latency, b.backed_percentiles),
                         throughput=b.throughput, **base) for b in p.batches] or [
                FloorRow(batch=1, latency=None, throughput=None, **base)]
        (res.harness_overhead if spec.runtime == "null" else res.floor).extend(rows)
    res.graph_ratios = list(fl.graph_ratios)
    res.floor_cpu_idle = fl.cpu_idle
    res.floor_comparisons = list(fl.comparisons)
    t = fl.theano
    res.theano = TheanoRow(theano_reason=t.theano.reason, outcome=theano.outcome(t.attempt), successor=t.successor,
                           compile_seconds=dict(t.graph_compile_seconds), p50_ms=dict(t.p50_ms),
                           deployment=dict(t.deployment))
    return [*fl.not_run, t.theano]
