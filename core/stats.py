"""Statistics from raw samples (never from a tool's rounded summary).

- `summarize(samples)`: count, mean, std, min, max and percentiles p50/p90/p99/p99.9, computed from
  the raw samples with numpy (linear interpolation between order statistics).
- `samples_needed(q)`: how many samples back percentile q at 99% confidence, by the binomial bound
  MLPerf LoadGen uses (with zero overshoots: q**n <= 1 - confidence): 44 for p90, 459 for p99,
  4603 for p99.9. `backed_percentiles(n)` says which percentiles a sample count can back.
- `WindowPolicy` + `measure_window(fn, policy)`: warm up (excluded), then call `fn` until the
  window has lasted at least `min_seconds` AND collected at least `min_samples`, bounded by
  `max_seconds` (raises if the minimum count cannot be reached in time).
- `repeat_interval(values)`: median and a 95% Student-t interval across repeats (on the log scale for
  positive values, so it stays positive).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")

PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}


def samples_needed(quantile_pct: float, confidence: float = 0.99) -> int:
    q = quantile_pct / 100.0
    if not 0.0 < q < 1.0:
        raise ValueError(f"percentile must be strictly between 0 and 100, got {quantile_pct}")
    return math.ceil(math.log(1.0 - confidence) / math.log(q))


def backed_percentiles(n: int, confidence: float = 0.99) -> list[str]:
    """Names of the percentiles in PERCENTILES that `n` samples can back (p50 needs 7)."""
    return [name for name, pct in PERCENTILES.items() if n >= samples_needed(pct, confidence)]


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Derived statistics of raw samples. Raises on an empty sample: there is nothing to report."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("cannot summarize an empty sample")
    out: dict[str, float] = {
        "n": float(arr.size),
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "min": float(arr.min()),
        "max": float(arr.max()),
    }
    for name, pct in PERCENTILES.items():
        out[name] = float(np.percentile(arr, pct))
    return out


def repeat_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Median and a Student-t `confidence` interval across repeats.

    Latencies and throughputs are positive and vary multiplicatively, so for all-positive values the
    interval is computed on their logarithms (a geometric mean with a t-interval, mapped back): it can
    never go below zero, as a linear t-interval of three skewed repeats does. Otherwise (a zero or a
    negative value) it is the linear t-interval of the mean. `scale` says which ("log" or "linear").
    With one repeat the interval is undefined: lo/hi are NaN and `repeats` says 1.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no repeats to summarize")
    out = {"repeats": float(arr.size), "median": float(np.median(arr)), "mean": float(arr.mean())}
    if arr.size < 2:
        out["ci_lo"] = out["ci_hi"] = float("nan")
        return out
    from scipy import stats as sps

    log = bool(np.all(arr > 0))
    x = np.log(arr) if log else arr
    half = float(sps.t.ppf(0.5 + confidence / 2.0, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    lo, hi = float(x.mean()) - half, float(x.mean()) + half
    out["ci_lo"], out["ci_hi"] = (math.exp(lo), math.exp(hi)) if log else (lo, hi)
    out["log_scale"] = 1.0 if log else 0.0
    return out


def median_items(items: Iterable[T], key: Callable[[T], Hashable], rank: Callable[[T], float]) -> list[T]:
    """Per group of `items` with the same `key`, the item of median `rank` (the lower median for an even
    count), groups in the order first seen: the repeat that represents a point, with figures that belong
    together (a per-figure median would mix repeats)."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return [sorted(group, key=rank)[(len(group) - 1) // 2] for group in groups.values()]


@dataclass(frozen=True)
class WindowPolicy:
    warmup_seconds: float = 2.0
    warmup_samples: int = 10
    min_seconds: float = 10.0
    min_samples: int = 500
    max_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.min_seconds > self.max_seconds:
            raise ValueError(f"min_seconds {self.min_seconds} > max_seconds {self.max_seconds}")
        if min(self.warmup_seconds, self.min_seconds) < 0 or min(self.warmup_samples, self.min_samples) < 1:
            raise ValueError(f"invalid window policy {self}")


@dataclass
class WindowResult:
    samples: list[float]  # seconds per call, perf_counter
    warmup_count: int
    window_seconds: float


def measure_window(fn: Callable[[], object], policy: WindowPolicy,
                   clock: Callable[[], float] = time.perf_counter) -> WindowResult:
    """Warm up, then time `fn` until both minimums are met; bounded by `policy.max_seconds`."""
    start = clock()
    warm = 0
    while warm < policy.warmup_samples or clock() - start < policy.warmup_seconds:
        fn()
        warm += 1
        if clock() - start > policy.max_seconds:
            raise TimeoutError(f"warm-up did not finish within {policy.max_seconds}s ({warm} calls)")
    samples: list[float] = []
    w0 = clock()
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        samples.append(t1 - t0)
        elapsed = t1 - w0
        if elapsed >= policy.min_seconds and len(samples) >= policy.min_samples:
            break
        if elapsed > policy.max_seconds:
            raise TimeoutError(
                f"only {len(samples)} of the required {policy.min_samples} samples in {policy.max_seconds}s: "
                "lower min_samples for this profile or raise max_seconds")
    return WindowResult(samples=samples, warmup_count=warm, window_seconds=clock() - w0)
