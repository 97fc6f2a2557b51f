"""Server-side metrics: scrape a Prometheus text endpoint, and `around(endpoint)` records the
server's own counters before and after a load window (TorchServe's inference and queue latency
totals and request counts; TF Serving's request and load latency), so server time can be set
beside client-observed latency."""
from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import requests

from serving.endpoint import Endpoint

_SAMPLE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$')
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_prometheus(text: str) -> list[Sample]:
    """Samples of the Prometheus text exposition format (comments and malformed lines skipped)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line.strip())
        if not m:
            continue
        name, labels, value = m.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        out.append(Sample(name, dict(_LABEL.findall(labels or "")), number))
    return out


def scrape(url: str, timeout: float = 5.0) -> list[Sample]:
    resp = requests.get(url, timeout=timeout)
    resp.raise_for_status()
    return parse_prometheus(resp.text)


def model_totals(samples: list[Sample], model: str, names: tuple[str, ...]) -> dict[str, float]:
    """Sum of each named metric over the series that belong to `model` (label model_name / model)."""
    totals = {n: 0.0 for n in names}
    for s in samples:
        if s.name in totals and model in (s.labels.get("model_name"), s.labels.get("model_name".upper()),
                                          s.labels.get("model"), s.labels.get("ModelName")):
            totals[s.name] += s.value
    return totals


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


# Counters per server: (names summed per model, derived means as (name, numerator, denominator, scale)).
SERVER_COUNTERS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str, str, float], ...]]] = {
    "torchserve": (
        ("ts_inference_requests_total", "ts_inference_latency_microseconds", "ts_queue_latency_microseconds"),
        (("mean_inference_ms", "ts_inference_latency_microseconds", "ts_inference_requests_total", 1e-3),
         ("mean_queue_ms", "ts_queue_latency_microseconds", "ts_inference_requests_total", 1e-3))),
    "tfserving": (
        (":tensorflow:serving:request_count", ":tensorflow:serving:request_latency_sum",
         ":tensorflow:serving:request_latency_count"),
        (("mean_request_latency_ms", ":tensorflow:serving:request_latency_sum",
          ":tensorflow:serving:request_latency_count", 1e-3),)),
}


def make_around(windows: list[MetricsWindow]) -> Callable[[Endpoint], contextlib.AbstractContextManager]:
    """`around(endpoint)`: a context manager that scrapes the endpoint's server metrics before and
    after the block and appends a `MetricsWindow` to `windows` (a scrape failure is recorded in the
    window's `error`, never silently dropped, and never breaks the load window)."""

    @contextlib.contextmanager
    def around(endpoint: Endpoint) -> Iterator[MetricsWindow]:
        url = endpoint.metrics_url
        names, derived = SERVER_COUNTERS.get(endpoint.server, ((), ()))
        window = MetricsWindow(stack=endpoint.stack, protocol=endpoint.protocol, model=endpoint.served_name,
                               metrics_url=url)
        if not url or not names:
            window.error = f"no metrics endpoint known for server {endpoint.server!r}"
        else:
            try:
                window.before = model_totals(scrape(url), endpoint.served_name, names)
            except Exception as exc:
                window.error = f"scrape before the window failed: {type(exc).__name__}: {exc}"
        t0 = time.perf_counter()
        try:
            yield window
        finally:
            window.seconds = time.perf_counter() - t0
            if window.error is None:
                try:
                    window.after = model_totals(scrape(url), endpoint.served_name, names)
                    window.delta = {k: window.after[k] - window.before.get(k, 0.0) for k in window.after}
                    for name, num, den, scale in derived:
                        d, n = window.delta.get(den, 0.0), window.delta.get(num, 0.0)
                        if d > 0 and n > 0:  # absent rather than NaN or a false zero
                            window.derived[name] = n / d * scale
                        elif d > 0:
                            window.notes.append(f"{num} did not grow over {d:.0f} requests: the server does "
                                                f"not time this protocol, so {name} is not derived")
                except Exception as exc:
                    window.error = f"scrape after the window failed: {type(exc).__name__}: {exc}"
            windows.append(window)

    return around
