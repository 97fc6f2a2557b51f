"""Rows derived from the measured points: failures as NotRun records, the run-to-run spread of batch-1
p50 across repeats, the Computational-graph row (eager vs graph per framework, pairs declared by the
graph runtimes' `eager`) and the PyTensor side of the Theano row."""
from __future__ import annotations

from deploy_compare.core import stats
from deploy_compare.core.kinds import RuntimeFamily
from deploy_compare.core.results import NotRun
from deploy_compare.models.floor.schema import FloorPoint, GraphRatio, SpreadRow, TheanoAttempt, TheanoRow
from deploy_compare.models.runtimes.base import RUNTIMES, load_runtimes

THEANO_SUCCESSOR = "pytensor"  # the runtime measured in Theano's place


def failed_not_run(points: list[FloorPoint]) -> list[NotRun]:
    """One NotRun per point identity that failed (first error), with its runtime's enabling command."""
    load_runtimes()
    out: dict[str, NotRun] = {}
    for p in points:
        if p.ok or p.spec.label in out:
            continue
        declared = RUNTIMES.get(p.spec.runtime).enable_command if p.spec.runtime in RUNTIMES else ""
        enable = declared or f"deploy-compare floor RUN_DIR --twins {p.spec.twin} " \
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


def graph_pairs() -> list[tuple[RuntimeFamily, str, str]]:
    """(framework, eager runtime, graph runtime) for every registered runtime that names its eager side."""
    pairs = [(cls.framework, cls.eager, cls.name) for _, cls in load_runtimes().items() if cls.eager]
    return sorted(pairs, key=lambda t: (t[0] != RuntimeFamily.TENSORFLOW, t[0], t[2]))


def _median_figure(points: list[FloorPoint], batch: int, figure: str) -> float | None:
    import numpy as np

    values = []
    for p in points:
        b = p.at(batch) if p.ok else None
        if b is not None:
            values.append(b.latency.stats["p50"] if figure == "p50" else b.throughput)
    return float(np.median(values)) if values else None


def graph_ratios(points: list[FloorPoint]) -> list[GraphRatio]:
    """The Computational-graph row: eager vs graph per framework, twin and thread count (median over repeats);
    graph side at fp32."""
    index: dict[tuple[str, str, int], list[FloorPoint]] = {}
    for p in points:  # a framework's own artifacts only: a cross-framework conversion is not its graph
        if p.spec.variant == "fp32" and not p.spec.converter:
            index.setdefault((p.spec.twin, p.spec.runtime, p.threads), []).append(p)
    rows = []
    for twin, threads in sorted({(k[0], k[2]) for k in index}):
        for framework, eager, graph in graph_pairs():
            e, g = index.get((twin, eager, threads), []), index.get((twin, graph, threads), [])
            e50, g50 = _median_figure(e, 1, "p50"), _median_figure(g, 1, "p50")
            if e50 is None or g50 is None:
                continue
            big = max((b.batch for p in e + g for b in p.batches), default=1)
            e_thr, g_thr = _median_figure(e, big, "thr"), _median_figure(g, big, "thr")
            rows.append(GraphRatio(framework=framework, twin=twin, threads=threads, eager=eager, graph=graph,
                                   eager_p50_ms=e50, graph_p50_ms=g50, latency_ratio=e50 / g50, batch=big,
                                   throughput_ratio=(g_thr / e_thr) if e_thr and g_thr else None,
                                   paired=_paired(e, g)))
    return rows


def _label(p: FloorPoint) -> str:
    return f"{p.spec.label} ({p.threads} thread{'s' if p.threads > 1 else ''})"


def _paired(a: list[FloorPoint], b: list[FloorPoint]) -> stats.PairedRatio | None:
    """A over B batch-1 p50 per paired round, over every process (repeat) that measured both side by side."""
    ra: list[float] = []
    rb: list[float] = []
    for pa in a:
        pb = next((q for q in b if (q.repeat, q.group, q.threads) == (pa.repeat, pa.group, pa.threads)), None)
        if pa.ok and pb is not None and pb.ok and pa.round_p50_ms and len(pa.round_p50_ms) == len(pb.round_p50_ms):
            ra += pa.round_p50_ms
            rb += pb.round_p50_ms
    if not ra:
        return None
    return stats.paired_ratio(ra, rb, a_name=_label(a[0]), b_name=_label(b[0]), metric="p50_ms", load="batch 1",
                              higher_is_better=False)


def floor_comparisons(points: list[FloorPoint]) -> list[stats.PairedRatio]:
    """Every two fp32 points of one twin and thread count measured side by side (paired rounds in the same
    processes): the per-round ratio of their batch-1 p50, with its intervals."""
    index: dict[tuple[str, str, str | None, int], list[FloorPoint]] = {}
    for p in points:
        if p.spec.variant == "fp32" and p.round_p50_ms:
            index.setdefault((p.spec.twin, p.spec.runtime, p.spec.artifact, p.threads), []).append(p)
    keys = sorted(index, key=lambda k: (k[0], k[3], k[1], k[2] or ""))
    out = []
    for i, ka in enumerate(keys):
        for kb in keys[i + 1:]:
            if (ka[0], ka[3]) == (kb[0], kb[3]) and (r := _paired(index[ka], index[kb])) is not None:
                out.append(r)
    return out


def theano_row(points: list[FloorPoint], theano: NotRun, attempt: TheanoAttempt | None) -> TheanoRow:
    """Theano's NotRun (as this run saw it) beside its successor's figures: graph-compile seconds and p50 of
    the first repeat at the fewest threads, per twin."""
    compile_s: dict[str, float] = {}
    p50: dict[str, float] = {}
    successor = [p for p in points if p.spec.runtime == THEANO_SUCCESSOR]
    for p in sorted(successor, key=lambda q: (q.repeat, q.threads)):
        if not p.ok:
            continue
        seconds = p.details.get("graph_compile_seconds")
        if isinstance(seconds, (int, float)):
            compile_s.setdefault(p.spec.twin, float(seconds))
        if p.p50_ms is not None:
            p50.setdefault(p.spec.twin, p.p50_ms)
    twins = list(dict.fromkeys(p.spec.twin for p in successor))
    return TheanoRow(theano=theano, successor=THEANO_SUCCESSOR, twins=twins,
                     deployment={"export_format": "none", "server": "none"}, graph_compile_seconds=compile_s,
                     p50_ms=p50, attempt=attempt)
