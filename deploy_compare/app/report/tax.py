"""The serving tax broken down, per served stack and per point (1 user, and the point nearest 50% of
saturation), from the client's mean and the server's own per-request accounting over that point's window.

Nesting (TorchServe; what each figure measures is in `deploy_compare.serving.metrics.SERVER_COUNTERS`):

    client mean = generator (the harness with the null endpoint's own round trip, same concurrency: an upper
                  bound on the harness's share; measured with C clients on this machine, the Python gRPC
                  null server is most of it over gRPC, see README "Load tests")
                + outside the server's clock (loopback transport, HTTP/gRPC decode before the job exists,
                  response write, client-side handling): the remainder
                + server total (REST: ts_inference_latency)
                    = queue (ts_queue_latency) + frontend worker thread (WorkerThreadTime)
                    + worker process IPC and protocol (the remainder)
                    + handler (PredictionTime) = parse + serialize (the remainder) + inference (floor p50)

TorchServe 0.12 does not time gRPC requests in its `ts_*` counters, so over gRPC the queue and the IPC stay
inside the outside row, which says so. A nested figure larger than its whole (e.g. a handler time above
the server total, from clocks of different resolution) is never shown as a negative component: the
component is 0 and the excess is reported as overlap, so the components then exceed the client's mean.
"""
from __future__ import annotations

from deploy_compare.app.report import fmt
from deploy_compare.app.report.model import (
    FloorRow,
    LoadPoint,
    ReportResults,
    SaturationRow,
    TaxBreakdown,
    TaxComponent,
)
from deploy_compare.serving.catalog import served_format

FLOOR_SOURCE = "in-process floor p50, same artifact, 1 thread, batch 1 (floor.json)"
# display order, outermost first
COMPONENTS = ("generator", "outside the server", "queue", "frontend thread", "worker IPC", "parse + serialize",
              "inference", "handler", "server, not itemised")


def floor_row(res: ReportResults, stack: str, model: str) -> FloorRow | None:
    """The in-process floor of the artifact a served stack runs: same twin, format, source framework and
    variant, batch 1, fewest threads (the servers' workers run 1 thread). A stack the catalog does not list
    (an older run's `torchserve/onnx`) is matched by format alone."""
    found = served_format(stack)
    fmt, variant, framework = ((found[0].format, found[1], found[0].framework) if found
                               else (stack.partition("/")[2], "fp32", None))
    rows = [f for f in res.floor if f.twin == model and f.format == fmt and f.variant == variant and f.batch == 1
            and f.latency is not None and not f.error and framework in (None, f.framework)]
    return min(rows, key=lambda f: f.threads) if rows else None


def client_mean(p: LoadPoint) -> float:
    """The client's mean per request over the point's window: open loop from the actual send (the server
    never sees the schedule), closed loop its response time."""
    stats = (p.uncorrected or p.latency) if p.mode == "open" else p.latency
    return stats.mean


def chosen_points(points: list[LoadPoint], saturation: SaturationRow | None) -> list[tuple[str, LoadPoint]]:
    """The 1-user point and the valid point whose throughput is nearest half the saturation (or of its
    lower bound), each with its label."""
    valid = [p for p in points if p.valid and p.latency.n > 0]
    out: list[tuple[str, LoadPoint]] = []
    one = next((p for p in valid if p.mode == "closed" and p.users == 1), None)
    if one is not None:
        out.append(("1 user", one))
    if saturation is not None and saturation.rps:
        half = 0.5 * saturation.rps
        rest = [p for p in valid if p is not one]
        if rest:
            p = min(rest, key=lambda q: abs(q.throughput - half))
            of = "saturation" if saturation.found else "the saturation lower bound"
            load = fmt.users(p.users or 0) if p.mode == "closed" else f"{p.target_rate:.0f} req/s offered (open loop)"
            out.append((f"{load}, {100 * p.throughput / saturation.rps:.0f}% of {of}", p))
    return out


class _Builder:
    def __init__(self) -> None:
        self.components: list[TaxComponent] = []
        self.overlap = 0.0
        self.notes: list[str] = []

    def add(self, name: str, ms: float, source: str) -> float:
        if ms < 0:
            self.overlap += -ms
            self.notes.append(f"{name}: the figures give {ms:.3f} ms (a part larger than its whole); shown as 0")
            ms = 0.0
        self.components.append(TaxComponent(name=name, ms=ms, source=source))
        return ms


def breakdown(p: LoadPoint, label: str, floor: FloorRow | None) -> TaxBreakdown:
    """One point's client mean split into non-negative components (see the module doc)."""
    m = client_mean(p)
    s = p.server
    total, queue = s.get("mean_inference_ms"), s.get("mean_queue_ms")
    thread, handler = s.get("mean_worker_thread_ms"), s.get("mean_prediction_ms")
    f = floor.latency.p50 if floor is not None and floor.latency is not None else None
    b = _Builder()
    notes = []
    if p.harness_mean_ms is not None:
        b.add("generator", p.harness_mean_ms, "the harness with the null endpoint's own round trip, same "
              "concurrency and payload (loadtest.json): an upper bound on the harness's share")
    else:
        notes.append("the generator's own share is not recorded for this point (`harness` in loadtest.json, "
                     "written by the load stage's null-endpoint sweep): it stays inside the outside row")
    inside: list[tuple[str, float, str]] = []
    if handler is not None:
        if f is not None:
            inside += [("inference", f, FLOOR_SOURCE),
                       ("parse + serialize", handler - f, "the handler's PredictionTime - inference")]
        else:
            inside.append(("handler", handler, "PredictionTime: the handler's parse, inference, serialize"))
    if thread is not None:
        inside.append(("frontend thread", thread, "WorkerThreadTime: the frontend's worker thread, dispatch and "
                                                  "response write, without the wait for the worker's reply"))
    if total is not None:
        if queue is not None:
            inside.append(("queue", queue, "ts_queue_latency_microseconds: request decoded -> a worker thread "
                                           "took it"))
        known = sum(v for _, v, _ in inside)
        inside.append(("worker IPC" if handler is not None else "server, not itemised", total - known,
                       "ts_inference_latency_microseconds (server total) - the rows inside it: the Python "
                       "worker's socket hop and protocol"))
        server_ms = total
        outside = "client mean - generator - server total: loopback transport, HTTP decode and write, client"
    else:
        server_ms = sum(v for _, v, _ in inside)
        outside = "over gRPC: client mean - generator - the rows inside the server (queue and worker IPC included)"
        if inside:
            notes.append("over gRPC TorchServe 0.12 times no request in its ts_* counters: the queue and the "
                         "worker IPC stay inside *outside the server*")
    if not inside:
        notes.append("no server-side figure for this point's window (see the notes under the table)")
    elif p.server_note:
        notes.append(p.server_note)
    b.add("outside the server", m - (p.harness_mean_ms or 0.0) - server_ms, outside)
    for name, value, source in sorted(inside, key=lambda c: COMPONENTS.index(c[0])):
        b.add(name, value, source)
    residual = m - sum(c.ms for c in b.components)
    return TaxBreakdown(stack=p.stack, protocol=p.protocol, model=p.model, launcher=p.launcher, point=label,
                        client_mean_ms=m, components=b.components,
                        unaccounted_ms=residual if residual > 1e-9 * m else 0.0,
                        overlap_ms=b.overlap, floor_p50_ms=f, server_requests=p.server_requests,
                        notes=notes + b.notes)


def derive_tax(res: ReportResults) -> None:
    """Every served stack's breakdowns, at its chosen points."""
    sat = {s.key: s for s in res.saturations}
    keys = list(dict.fromkeys(p.key for p in res.load_points))
    for key in keys:
        points = [p for p in res.load_points if p.key == key]
        floor = floor_row(res, key[0], key[2])
        for label, p in chosen_points(points, sat.get(key)):
            res.tax.append(breakdown(p, label, floor))
