"""Statistics from raw samples (never from a tool's rounded summary).

- `summarize(samples)`: count, mean, std, min, max and percentiles p50/p90/p95/p99/p99.9, computed from
  the raw samples with numpy (linear interpolation between order statistics).
- `samples_needed(q)`: how many samples back percentile q at 99% confidence, by the binomial bound
  MLPerf LoadGen uses (with zero overshoots: q**n <= 1 - confidence): 44 for p90, 90 for p95, 459 for p99,
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

PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}


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


# --- paired comparisons (conventions rule 15): per-round ratios of two things measured side by side

def balanced_order(items: Sequence[T], round_: int) -> list[T]:
    """Round `round_`'s order: rotated by round_ // 2, reversed on odd rounds. Over 2n rounds every item is
    in every position equally often, and as often before as after each other item."""
    if not items:
        return []
    k = (round_ // 2) % len(items)
    order = list(items[k:]) + list(items[:k])
    return order[::-1] if round_ % 2 else order


def sign_test_p(values: Sequence[float]) -> float:
    """Two-sided exact sign test of "the median of `values` is 0" (zeros dropped): the smallest p it can give
    with n non-zero values is 2**(1 - n), so 8 rounds can reach p < 0.01 and 4 cannot go below 0.125."""
    pos = sum(1 for v in values if v > 0)
    neg = sum(1 for v in values if v < 0)
    n = pos + neg
    if n == 0:
        return 1.0
    k = min(pos, neg)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def sign_interval(values: Sequence[float], confidence: float) -> tuple[float | None, float | None]:
    """Distribution-free `confidence` interval of the median of `values` from their order statistics (the
    interval that inverts the exact sign test): (x_(k), x_(n+1-k)) with the largest k whose coverage
    1 - 2 P(Binomial(n, 1/2) < k) is at least `confidence`. (None, None) when even (min, max) covers less
    (too few values to bound the median at that confidence)."""
    x = sorted(values)
    n = len(x)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    best = None
    cdf = 0.0  # P(B <= k - 1)
    for k in range(1, n // 2 + 1):
        cdf += math.comb(n, k - 1) / 2.0 ** n
        if 1.0 - 2.0 * cdf >= confidence:
            best = k
        else:
            break
    if best is None:
        return None, None
    return x[best - 1], x[n - best]


@dataclass
class PairedRatio:
    """A over B for one metric, from rounds in which both were measured side by side (rounds in a balanced
    order on the same warm servers): the per-round ratios, their median and exact sign-test intervals of
    the median ratio at 95% and 99% (None: too few rounds to bound it). Lower is better for latency, higher
    for throughput (`higher_is_better`)."""
    a: str
    b: str
    metric: str  # e.g. "p50_ms", "throughput_rps"
    load: str  # e.g. "1 users"
    higher_is_better: bool
    ratios: list[float]  # per round: a / b
    ratio: float  # median of the per-round ratios
    ci95_lo: float | None
    ci95_hi: float | None
    ci99_lo: float | None
    ci99_hi: float | None
    sign_p: float  # two-sided exact sign test of "no difference"

    @property
    def n(self) -> int:
        return len(self.ratios)

    def excludes_one(self, level: float = 0.99) -> bool:
        """Whether the interval at `level` (0.95 or 0.99) excludes "no difference" (a ratio of 1)."""
        lo, hi = (self.ci99_lo, self.ci99_hi) if level >= 0.99 else (self.ci95_lo, self.ci95_hi)
        return lo is not None and hi is not None and (lo > 1.0 or hi < 1.0)

    def winner(self, level: float = 0.99) -> str | None:
        """The better of the two when the interval at `level` excludes no difference; else None."""
        if not self.excludes_one(level):
            return None
        a_higher = (self.ci99_lo if level >= 0.99 else self.ci95_lo) > 1.0  # type: ignore[operator]
        return self.a if a_higher == self.higher_is_better else self.b

    def flipped(self) -> PairedRatio:
        """B over A: the same comparison the other way round."""
        def inv(v: float | None) -> float | None:
            return None if v is None else 1.0 / v

        return PairedRatio(a=self.b, b=self.a, metric=self.metric, load=self.load,
                           higher_is_better=self.higher_is_better, ratios=[1.0 / r for r in self.ratios],
                           ratio=1.0 / self.ratio, ci95_lo=inv(self.ci95_hi), ci95_hi=inv(self.ci95_lo),
                           ci99_lo=inv(self.ci99_hi), ci99_hi=inv(self.ci99_lo), sign_p=self.sign_p)

    def within(self) -> float | None:
        """The largest difference the 99% interval leaves open, as a fraction (None: unbounded)."""
        if self.ci99_lo is None or self.ci99_hi is None:
            return None
        return max(abs(self.ci99_hi - 1.0), abs(1.0 - self.ci99_lo))


def paired_ratio(a: Sequence[float], b: Sequence[float], *, a_name: str, b_name: str, metric: str, load: str,
                 higher_is_better: bool) -> PairedRatio:
    """The per-round ratios a_i / b_i (positive figures of the same rounds) and their sign-test intervals,
    computed on the log scale (a ratio's median and intervals map back exactly: order statistics)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired figures need the same non-zero number of rounds, got {len(a)} and {len(b)}")
    if min(min(a), min(b)) <= 0:
        raise ValueError(f"paired figures must be positive, got {list(a)} and {list(b)}")
    logs = [math.log(x / y) for x, y in zip(a, b, strict=True)]

    def back(v: float | None) -> float | None:
        return None if v is None else math.exp(v)

    lo95, hi95 = sign_interval(logs, 0.95)
    lo99, hi99 = sign_interval(logs, 0.99)
    return PairedRatio(a=a_name, b=b_name, metric=metric, load=load, higher_is_better=higher_is_better,
                       ratios=[math.exp(v) for v in logs], ratio=math.exp(float(np.median(logs))),
                       ci95_lo=back(lo95), ci95_hi=back(hi95), ci99_lo=back(lo99), ci99_hi=back(hi99),
                       sign_p=sign_test_p(logs))


METRIC_WORDS = {"p50_ms": "p50", "p99_ms": "p99", "throughput_rps": "throughput"}


def paired_claim(r: PairedRatio, *, unit_word: str = "", level: float = 0.99) -> str:
    """What `r` supports, in words: a ranking with its size only when the interval at `level` excludes no
    difference, else "no difference found (within +-Y%)" (or "too few rounds to tell")."""
    what = f"{METRIC_WORDS.get(r.metric, r.metric)}{' ' + unit_word if unit_word else ''} at {r.load}"
    win = r.winner(level)
    if win is None:
        w = r.within()
        if w is None:
            return f"{what}: too few rounds ({r.n}) to bound the ratio at {level:.0%}"
        return (f"{what}: no difference found between {r.a} and {r.b} (within ±{w:.0%}, {level:.0%} interval over "
                f"{r.n} paired rounds)")
    ratio = r.ratio if win == r.a else 1.0 / r.ratio
    lo, hi = (r.ci99_lo, r.ci99_hi) if level >= 0.99 else (r.ci95_lo, r.ci95_hi)
    assert lo is not None and hi is not None
    lo, hi = (lo, hi) if win == r.a else (1.0 / hi, 1.0 / lo)
    if r.higher_is_better:
        size = f"{ratio - 1:.0%} higher ({lo - 1:.0%} to {hi - 1:.0%})"
    else:
        size = f"{1 - ratio:.0%} lower ({1 - hi:.0%} to {1 - lo:.0%})"
    other = r.b if win == r.a else r.a
    return f"{what}: {win} {size} than {other} ({level:.0%} interval, {r.n} paired rounds, sign test p={r.sign_p:.3g})"
