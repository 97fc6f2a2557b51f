"""Load tests: loadtest.json (closed-loop sweeps, open-loop points, generator headroom, validity)."""
from __future__ import annotations

from pathlib import Path

from core import results
from core.stats import median_items
from deploy_compare.report.model import Headroom, LatencyStats, LoadPoint, ReportResults
from deploy_compare.report.sources import source


def _latency(summary) -> LatencyStats | None:
    """A loadtests `LatencySummary` (ms, from raw samples) -> the report's latency row."""
    if summary is None:
        return None
    st = summary.stats
    return LatencyStats(n=int(st["n"]), p50=st["p50"], p90=st["p90"], p99=st["p99"], p999=st["p99.9"],
                        mean=st["mean"], backed=list(summary.backed))


def _point(p, endpoint: dict, generator_cpus: list[int], repeats: int, intervals: dict) -> LoadPoint:
    latency = _latency(p.latency_ms)
    reasons = list(p.invalid_reasons)
    if latency is None:  # nothing completed: there is no figure to show, only the reason
        latency = LatencyStats(n=0, p50=float("nan"), p90=float("nan"), p99=float("nan"), p999=float("nan"),
                               mean=float("nan"))
        reasons = reasons or ["no successful request in the window"]
    if p.error_flag and not any("error" in r for r in reasons):
        reasons.append(f"error rate {100 * p.error_rate:.2g}% above the threshold")
    return LoadPoint(
        stack=endpoint.get("stack", "?"), protocol=endpoint.get("protocol", "?"), model=endpoint.get("model", "?"),
        mode=p.mode, users=p.users, target_rate=p.target_rate, throughput=p.throughput_rps, latency=latency,
        uncorrected=_latency(p.uncorrected_ms), late_fraction=p.late_fraction if p.mode == "open" else None,
        errors=sum(p.errors.values()), error_rate=p.error_rate,
        generator_cpu=max((c.cpu_fraction for c in p.generator_cpu), default=None),
        valid=p.valid and latency.n > 0, invalid_reasons=reasons, repeats=repeats,
        intervals=intervals.get((p.mode, p.load), {}), server_cpus=list(endpoint.get("server_cpus", [])),
        generator_cpus=list(generator_cpus))


def _rank(p) -> float:
    if p.mode == "open":
        return p.latency_ms.stats["p99"] if p.latency_ms else float("inf")
    return p.throughput_rps


def median_repeats(points: list) -> list:
    """Per (mode, load level) the repeat of median throughput (closed loop) or corrected p99 (open loop)."""
    return median_items(points, key=lambda p: (p.mode, p.load), rank=_rank)


@source("loadtest.json", "serve", "latency", "curves", "openloop", "server-client")
def loadtest(path: Path, res: ReportResults) -> list[results.NotRun]:
    from loadtests.results import LoadTestResults

    lt = results.load(LoadTestResults, path)
    failed: list[results.NotRun] = []
    for ep in lt.endpoints:
        d = ep.endpoint
        if ep.status != "ok":
            failed.append(results.NotRun(what=f"load test {d.get('stack')} {d.get('protocol')} ({d.get('model')})",
                                         reason=ep.failure or ep.status, enable_command="rerun the serve stage"))
        intervals = {(r.mode, r.load): r.metrics for r in ep.repeat_summaries}
        repeats = max(len(ep.sweeps), 1)
        # one row per load level: its median repeat (closed loop: by throughput; open loop: by corrected p99),
        # a real point whose figures belong together; the spread of all repeats is in the intervals
        points = median_repeats([p for s in ep.sweeps for p in s.points] + list(ep.open_points))
        res.load_points += [_point(p, d, ep.generator_cpus, repeats, intervals) for p in points]
    # the stored per-protocol headroom and ratio (computed once by the load stage); the most constraining shown
    ranked = sorted(lt.headrooms, key=lambda x: x.ratio if x.ratio is not None else float("inf"))
    if ranked:
        h = ranked[0]
        at = next((p for p in h.points if p.users == h.capacity_users and p.latency_ms), None)
        res.headroom = Headroom(
            throughput=h.capacity_rps, per_core=None, cpus=list(h.generator_cpus),
            p50_ms=at.latency_ms.stats["p50"] if at is not None and at.latency_ms else None,
            generator_cpu=h.generator_cpu_fraction, fastest_server=h.fastest_rps, ratio=h.ratio,
            note=f"{h.protocol}: {h.limited_by}")
    return [*lt.not_run, *failed]
