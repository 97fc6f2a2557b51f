"""Load tests: loadtest.json (closed-loop sweeps, open-loop points, generator headroom, validity).

Fields newer load stages write (per point: the harness share and the window's wall-clock bounds; per sweep:
the stop kind; per endpoint: the saturation verdict; per protocol: the headroom) are read from the file's
own data when the loaded dataclass does not know them yet, and are absent (None) in older files: the
sections that need them then say which field is missing.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from deploy_compare.app.report.model import Headroom, LatencyStats, LoadPoint, ReportResults, SaturationRow
from deploy_compare.app.report.sources import source
from deploy_compare.core import results
from deploy_compare.core.stats import median_items

SATURATING = ("plateau", "slo")  # stop kinds that mean a saturation was seen (deploy_compare.loadtests.rules.StopKind)
_KIND_PREFIXES = {"throughput plateau": "plateau", "p99 ": "slo", "reached the last step": "last_step",
                  "no successful request": "no_success"}


def _latency(summary) -> LatencyStats | None:
    """A loadtests `LatencySummary` (ms, from raw samples) -> the report's latency row."""
    if summary is None:
        return None
    st = summary.stats
    return LatencyStats(n=int(st["n"]), p50=st["p50"], p90=st["p90"], p99=st["p99"], p999=st["p99.9"],
                        mean=st["mean"], backed=list(summary.backed), p95=st.get("p95"))


def newer(typed: Any, raw: dict, name: str) -> Any:
    """A field of a newer results format: from the dataclass when it knows it, else from the file's data
    (plain JSON data either way), None when neither has it."""
    if not hasattr(typed, name):
        return raw.get(name)
    value = getattr(typed, name)
    if isinstance(value, list):
        return [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def launcher_of(endpoint: dict) -> str:
    return str(endpoint.get("launcher") or endpoint.get("settings", {}).get("launcher", ""))


def _point(p, raw: dict, endpoint: dict, generator_cpus: list[int], repeats: int, intervals: dict) -> LoadPoint:
    latency = _latency(p.latency_ms)
    reasons = list(p.invalid_reasons)
    if latency is None:  # nothing completed: there is no figure to show, only the reason
        latency = LatencyStats(n=0, p50=float("nan"), p90=float("nan"), p99=float("nan"), p999=float("nan"),
                               mean=float("nan"))
        reasons = reasons or ["no successful request in the window"]
    if p.error_flag and not any("error" in r for r in reasons):
        reasons.append(f"error rate {100 * p.error_rate:.2g}% above the threshold")
    harness = newer(p, raw, "harness") or {}
    start, end = newer(p, raw, "window_start_unix"), newer(p, raw, "window_end_unix")
    return LoadPoint(
        stack=endpoint.get("stack", "?"), protocol=endpoint.get("protocol", "?"), model=endpoint.get("model", "?"),
        mode=p.mode, users=p.users, target_rate=p.target_rate, throughput=p.throughput_rps, latency=latency,
        uncorrected=_latency(p.uncorrected_ms), late_fraction=p.late_fraction if p.mode == "open" else None,
        errors=sum(p.errors.values()), error_rate=p.error_rate,
        generator_cpu=max((c.cpu_fraction for c in p.generator_cpu), default=None),
        valid=p.valid and latency.n > 0, invalid_reasons=reasons, warnings=list(newer(p, raw, "warnings") or []),
        repeats=repeats,
        intervals=intervals.get((p.mode, p.load), {}), server_cpus=list(endpoint.get("server_cpus", [])),
        generator_cpus=list(generator_cpus), launcher=launcher_of(endpoint),
        scheduling="; ".join(sorted({c.scheduling for c in p.generator_cpu if c.scheduling})),
        harness_mean_ms=harness.get("mean_ms"), harness_p50_ms=harness.get("p50_ms"),
        window_unix=(start, end) if start is not None and end is not None else None)


def _rank(p) -> float:
    if p.mode == "open":
        return p.latency_ms.stats["p99"] if p.latency_ms else float("inf")
    return p.throughput_rps


def median_repeats(points: list) -> list:
    """Per (mode, load level) the repeat of median throughput (closed loop) or corrected p99 (open loop)."""
    return median_items(points, key=lambda p: (p.mode, p.load), rank=_rank)


def stop_kind(reason: str, stored: str | None) -> str:
    """The stored kind, or for older files the kind its reason text starts with ("" if none matches)."""
    if stored:
        return stored
    return next((kind for prefix, kind in _KIND_PREFIXES.items() if reason.startswith(prefix)), "")


def saturation_row(ep, raw: dict) -> SaturationRow:
    d = ep.endpoint
    stored = newer(ep, raw, "saturation")
    raw_sweeps = raw.get("sweeps", [])
    kinds = [stop_kind(s.stop_reason, newer(s, r, "stop_kind")) for s, r in zip(ep.sweeps, raw_sweeps)]
    reached = [max((p.users or 0 for p in s.points), default=0) for s in ep.sweeps]
    row = SaturationRow(stack=d.get("stack", "?"), protocol=d.get("protocol", "?"), model=d.get("model", "?"),
                        launcher=launcher_of(d), found=bool(kinds) and all(k in SATURATING for k in kinds),
                        rps=ep.saturation_rps, users=None, max_users=max(reached, default=None) or None,
                        stop_kinds=kinds, stop_reasons=[s.stop_reason for s in ep.sweeps],
                        interval=ep.saturation_interval, warmup=raw.get("server_warmup"))
    if stored:  # the load stage's own verdict wins: the report never re-derives it
        row.found, row.rps, row.users = bool(stored["found"]), stored.get("rps"), stored.get("users")
        row.max_users = stored.get("max_users", row.max_users)
        row.stop_kinds = list(stored.get("stop_kinds", kinds))
        row.stop_reasons = list(stored.get("stop_reasons", row.stop_reasons))
    elif ep.sweeps:
        users = [s.saturation_users for s in ep.sweeps if s.saturation_rps == ep.saturation_rps]
        row.users = users[0] if users else None
    return row


def headrooms(lt, raw: dict) -> list[Headroom]:
    """The stored headroom(s): per protocol when the load stage wrote them, else the single older one with its
    stored ratio. Nothing is recomputed here, so the console, loadtest.json and the report agree."""
    out = []
    for h in newer(lt, raw, "headrooms") or []:
        at = next((p for p in h.get("points", []) if p.get("users") == h.get("capacity_users")
                   and p.get("latency_ms")), None)
        out.append(Headroom(
            throughput=h["capacity_rps"], per_core=None, cpus=list(h.get("generator_cpus", [])),
            p50_ms=at["latency_ms"]["stats"]["p50"] if at else None, generator_cpu=h.get("generator_cpu_fraction"),
            fastest_server=h.get("fastest_rps"), ratio=h.get("ratio"), note=h.get("limited_by", ""),
            protocol=h.get("protocol", "")))
    old = getattr(lt, "headroom", None)
    if not out and old is not None:
        out.append(Headroom(throughput=old.throughput_rps, per_core=old.rps_per_core, cpus=list(old.generator_cpus),
                            p50_ms=None, generator_cpu=old.generator_cpu_fraction,
                            ratio=newer(lt, raw, "headroom_ratio"), note=old.note))
    return out


@source("loadtest.json", "load", "latency", "curves", "openloop", "serving-tax", "scorecard")
def loadtest(path: Path, res: ReportResults) -> list[results.NotRun]:
    from deploy_compare.loadtests.results import LoadTestResults

    lt = results.load(LoadTestResults, path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    failed: list[results.NotRun] = []
    for ep, raw_ep in zip(lt.endpoints, raw.get("endpoints", [])):
        d = ep.endpoint
        if ep.status != "ok":
            failed.append(results.NotRun(what=f"load test {d.get('stack')} {d.get('protocol')} ({d.get('model')})",
                                         reason=ep.failure or ep.status, enable_command="rerun the serve stage"))
        intervals = {(r.mode, r.load): r.metrics for r in ep.repeat_summaries}
        repeats = max(len(ep.sweeps), 1)
        typed = [p for s in ep.sweeps for p in s.points] + list(ep.open_points)
        raws = [r for s in raw_ep.get("sweeps", []) for r in s.get("points", [])] + raw_ep.get("open_points", [])
        raw_of = {id(p): r for p, r in zip(typed, raws)}
        # one row per load level: its median repeat (closed loop: by throughput; open loop: by corrected p99),
        # a real point whose figures belong together; the spread of all repeats is in the intervals
        res.load_points += [_point(p, raw_of.get(id(p), {}), d, ep.generator_cpus, repeats, intervals)
                            for p in median_repeats(typed)]
        if ep.sweeps:
            res.saturations.append(saturation_row(ep, raw_ep))
    res.headrooms = headrooms(lt, raw)
    res.cpu_idle = lt.cpu_idle
    res.reference = lt.reference
    res.comparisons, res.paired_rounds = list(lt.comparisons), lt.paired_rounds
    return [*lt.not_run, *failed]
