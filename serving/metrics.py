"""Server-side metrics: scrape a Prometheus text endpoint, and `around(endpoint)` records the
server's own counters before and after an endpoint's load (TorchServe's inference and queue latency
totals, request counts and its per-request times as histogram sums and counts; TF Serving's request
latency), so server time can be set beside client-observed latency.

Per point: while the block runs, a sampler thread scrapes the same counters every `SAMPLE_INTERVAL_S`
with a wall-clock time stamp (`MetricsWindow.series`). A load point that records its window's
wall-clock bounds gets the server's per-request means over exactly that window (`interval_means`: the
first and last samples inside it, so no warm-up and no neighbouring point is counted). Each scrape
costs the server's frontend a little CPU (one HTTP request, a few kB of text), twice a second."""
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import requests

from deploy_compare.serving.endpoint import Endpoint


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_prometheus(text: str, source: str = "metrics text") -> list[Sample]:
    """Every sample of a Prometheus text exposition (histograms as their `_bucket`/`_sum`/`_count` samples), read
    by prometheus_client's own parser. Raises ValueError naming `source` when the text does not parse."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        return [Sample(_as_exposed(family, s.name, text), dict(s.labels), float(s.value))
                for family in text_string_to_metric_families(text) for s in family.samples]
    except ValueError as exc:
        raise ValueError(f"{source} is not Prometheus text exposition format: {exc}") from exc


def _as_exposed(family, name: str, text: str) -> str:
    """The sample's name as the server exposes it. The parser renames the samples of a counter declared without
    `_total` (`# TYPE ts_inference_latency_microseconds counter`) to OpenMetrics' `..._total`; our counter
    tables, and the series stored in serving.json, use the servers' own names."""
    if family.type == "counter" and name == f"{family.name}_total" and f"# TYPE {name} counter" not in text:
        return family.name
    return name


def scrape(url: str, timeout: float = 5.0) -> list[Sample]:
    """The samples a server's Prometheus endpoint serves now."""
    resp = requests.get(url, timeout=timeout)
    resp.raise_for_status()
    return parse_prometheus(resp.text, source=url)


def model_totals(samples: list[Sample], model: str, names: tuple[str, ...]) -> dict[str, float]:
    """Sum of each named metric over the series that belong to `model` (label model_name / model), or over
    every series for metrics without a model label (TorchServe's host-level QueueTime, WorkerThreadTime:
    the load stage drives one endpoint at a time, so a window's delta is that endpoint's)."""
    totals = {n: 0.0 for n in names}
    for s in samples:
        owner = [s.labels[k] for k in ("model_name", "MODEL_NAME", "model", "ModelName", "deployment")
                 if k in s.labels]
        if s.name in totals and (model in owner or (not owner and s.name in HOST_LEVEL)):
            totals[s.name] += s.value
    return totals


@dataclass
class CounterSample:
    """One scrape during a window: wall-clock time (s since the epoch, to line up with the load points'
    window bounds recorded by another process) and the summed counters."""

    t: float
    values: dict[str, float]


@dataclass
class MetricsWindow:
    """Server counters over one load window of one endpoint: before, after, and their difference."""

    stack: str
    protocol: str
    model: str
    metrics_url: str
    seconds: float = 0.0
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    delta: dict[str, float] = field(default_factory=dict)
    derived: dict[str, float] = field(default_factory=dict)  # e.g. mean server inference time per request
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    series: list[CounterSample] = field(default_factory=list)  # scrapes during the window, in time order
    sample_interval_s: float = 0.0


@dataclass
class IntervalMeans:
    """The server's per-request means over part of a window (between two of its samples)."""

    t0: float
    t1: float
    requests: float  # requests the server counted in the interval
    derived: dict[str, float]  # as MetricsWindow.derived
    notes: list[str] = field(default_factory=list)


SAMPLE_INTERVAL_S = 0.5  # sampler period: several samples inside even a quick profile's 2 s point window
_RAY_PROXY = tuple(f"ray_serve_{p}_request_latency_ms_{k}" for p in ("http", "grpc") for k in ("sum", "count"))
HOST_LEVEL = frozenset({"QueueTime_sum", "QueueTime_count", "WorkerThreadTime_sum", "WorkerThreadTime_count",
                        *_RAY_PROXY})

# Counters per server: (names summed per model, derived means as (name, numerator, denominator, scale)).
# TorchServe (frontend: org.pytorch.serve.job.RestJob, wlm.WorkerThread; backend: ts/service.py):
#   ts_inference_latency_microseconds  job created (request decoded) -> response written, queue included (REST only)
#   ts_queue_latency_microseconds      job created -> a worker thread took it (REST only)
#   WorkerThreadTime                   the frontend's worker thread per request, excluding the wait for the
#                                      backend's reply (ms clock; a histogram via serving/torchserve/config.py)
#   PredictionTime                     the Python worker's call of the handler: parse, inference, serialize
#   HandlerTime                        emitted by TorchServe's BaseHandler only (our handler does not extend it)
SERVER_COUNTERS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str, str, float], ...]]] = {
    "torchserve": (
        ("ts_inference_requests_total", "ts_inference_latency_microseconds", "ts_queue_latency_microseconds",
         "WorkerThreadTime_sum", "WorkerThreadTime_count", "PredictionTime_sum", "PredictionTime_count",
         "HandlerTime_sum", "HandlerTime_count"),
        (("mean_inference_ms", "ts_inference_latency_microseconds", "ts_inference_requests_total", 1e-3),
         ("mean_queue_ms", "ts_queue_latency_microseconds", "ts_inference_requests_total", 1e-3),
         ("mean_worker_thread_ms", "WorkerThreadTime_sum", "WorkerThreadTime_count", 1.0),
         ("mean_prediction_ms", "PredictionTime_sum", "PredictionTime_count", 1.0),
         ("mean_handler_ms", "HandlerTime_sum", "HandlerTime_count", 1.0))),
    "tfserving": (
        (":tensorflow:serving:request_count", ":tensorflow:serving:request_latency_sum",
         ":tensorflow:serving:request_latency_count"),
        (("mean_request_latency_ms", ":tensorflow:serving:request_latency_sum",
          ":tensorflow:serving:request_latency_count", 1e-3),)),
    # Ray Serve (ray/serve/_private/request_ingress_metrics.py, replica.py), pushed to Ray's Prometheus export
    # every RAY_metrics_report_interval_ms (1 s here, serving/rayserve/config.py):
    #   ray_serve_{http,grpc}_request_latency_ms         the proxy: request in -> answer out (whole server)
    #   ray_serve_deployment_processing_latency_ms       the model's replica: its method call (label deployment)
    # the difference is the proxy, the ingress deployment and two router hops
    "rayserve": (
        (*_RAY_PROXY, "ray_serve_deployment_processing_latency_ms_sum",
         "ray_serve_deployment_processing_latency_ms_count"),
        (("mean_proxy_http_ms", "ray_serve_http_request_latency_ms_sum", "ray_serve_http_request_latency_ms_count",
          1.0),
         ("mean_proxy_grpc_ms", "ray_serve_grpc_request_latency_ms_sum", "ray_serve_grpc_request_latency_ms_count",
          1.0),
         ("mean_replica_ms", "ray_serve_deployment_processing_latency_ms_sum",
          "ray_serve_deployment_processing_latency_ms_count", 1.0))),
}


def derive(server: str, delta: dict[str, float]) -> tuple[dict[str, float], list[str]]:
    """Per-request means from counter differences, and notes for the means that cannot be derived."""
    derived: dict[str, float] = {}
    notes: list[str] = []
    for name, num, den, scale in SERVER_COUNTERS.get(server, ((), ()))[1]:
        d, n = delta.get(den, 0.0), delta.get(num, 0.0)
        # a histogram's sum and count come from the same observations, so a zero sum is a measured zero (ms
        # clock ticks); a latency counter that did not grow while requests did means those were not timed
        if d > 0 and (n > 0 or den.endswith("_count")):  # absent rather than NaN or a false zero
            derived[name] = n / d * scale
        elif d > 0:
            notes.append(f"{num} did not grow over {d:.0f} requests: the server does not time these "
                         f"requests, so {name} is not derived")
    return derived, notes


def interval_means(series: list[CounterSample], server: str, t0: float, t1: float) -> IntervalMeans | None:
    """The server's per-request means between the first and the last sample inside [t0, t1] (wall clock),
    or None when fewer than two samples fall inside or the server counted no request between them."""
    inside = [s for s in series if t0 <= s.t <= t1]
    if len(inside) < 2:
        return None
    first, last = inside[0], inside[-1]
    delta = {k: last.values[k] - first.values.get(k, 0.0) for k in last.values}
    requests = delta.get(REQUESTS.get(server, ""), 0.0)
    if requests <= 0:
        return None
    derived, notes = derive(server, delta)
    return IntervalMeans(t0=first.t, t1=last.t, requests=requests, derived=derived, notes=notes)


REQUESTS = {"torchserve": "ts_inference_requests_total", "tfserving": ":tensorflow:serving:request_latency_count",
            "rayserve": "ray_serve_deployment_processing_latency_ms_count"}


class _Sampler:
    """Scrapes `url` every `interval` s into `window.series` until stopped (bounded: each scrape has a
    timeout, `stop` joins with one). A failed scrape ends the sampling with a note, never the load."""

    def __init__(self, window: MetricsWindow, url: str, model: str, names: tuple[str, ...], interval: float,
                 cpus: list[int]):
        self.window, self.url, self.model, self.names, self.interval = window, url, model, names, interval
        self.cpus = set(cpus)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name=f"metrics-{model}", daemon=True)

    def run(self) -> None:
        if self.cpus:
            # this thread only (Linux: affinity is per thread): the scrapes and their parsing are the
            # orchestrator's only work during a window (its process used ~4 ms of CPU per second against
            # TorchServe); with the server's core busy the kernel would run them on the generator's
            os.sched_setaffinity(0, self.cpus)
        while not self.stopped.wait(self.interval):
            try:
                values = model_totals(scrape(self.url, timeout=2.0), self.model, self.names)
            except Exception as exc:  # recorded: the window keeps its before/after figures
                self.window.notes.append(f"sampling stopped after {len(self.window.series)} samples: "
                                         f"{type(exc).__name__}: {exc}")
                return
            self.window.series.append(CounterSample(t=time.time(), values=values))

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=self.interval + 5.0)


def make_around(windows: list[MetricsWindow], sample_interval: float = SAMPLE_INTERVAL_S,
                ) -> Callable[[Endpoint], contextlib.AbstractContextManager]:
    """`around(endpoint)`: a context manager that scrapes the endpoint's server metrics before and
    after the block (and every `sample_interval` s during it) and appends a `MetricsWindow` to `windows`
    (a scrape failure is recorded in the window's `error`, never silently dropped, and never breaks the
    load window)."""

    @contextlib.contextmanager
    def around(endpoint: Endpoint) -> Iterator[MetricsWindow]:
        url = endpoint.metrics_url
        names, _ = SERVER_COUNTERS.get(endpoint.server, ((), ()))
        window = MetricsWindow(stack=endpoint.stack, protocol=endpoint.protocol, model=endpoint.served_name,
                               metrics_url=url, sample_interval_s=sample_interval)
        sampler = None
        if not url or not names:
            window.error = f"no metrics endpoint known for server {endpoint.server!r}"
        else:
            try:
                window.before = model_totals(scrape(url), endpoint.served_name, names)
                window.series.append(CounterSample(t=time.time(), values=dict(window.before)))
                if sample_interval > 0:
                    sampler = _Sampler(window, url, endpoint.served_name, names, sample_interval,
                                       endpoint.server_cpus)
                    sampler.thread.start()
            except Exception as exc:
                window.error = f"scrape before the window failed: {type(exc).__name__}: {exc}"
        t0 = time.perf_counter()
        try:
            yield window
        finally:
            window.seconds = time.perf_counter() - t0
            if sampler is not None:
                sampler.stop()
            if window.error is None:
                try:
                    window.after = model_totals(scrape(url), endpoint.served_name, names)
                    window.series.append(CounterSample(t=time.time(), values=dict(window.after)))
                    window.delta = {k: window.after[k] - window.before.get(k, 0.0) for k in window.after}
                    window.derived, notes = derive(endpoint.server, window.delta)
                    window.notes += notes
                except Exception as exc:
                    window.error = f"scrape after the window failed: {type(exc).__name__}: {exc}"
            windows.append(window)

    return around
