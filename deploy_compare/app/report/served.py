"""Served-stack figures that combine several results files: the scorecard rows (one per served stack and
launcher), the saturation wording, and the native-vs-container pairs. Only saved results are read; every
figure is the stored one (saturation verdicts and headrooms are never re-derived here)."""
from __future__ import annotations

from typing import Any

from deploy_compare.app.report import fmt
from deploy_compare.app.report.model import (
    ArtifactRow,
    LoadPoint,
    MemoryRow,
    ReportResults,
    SaturationRow,
    ScoreRow,
)
from deploy_compare.app.report.tax import floor_row
from deploy_compare.serving.catalog import served_format

BOTH_COMMAND = 'make deploy-compare ARGS="--launcher both"'


def saturation_text(s: SaturationRow | None) -> str:
    """"saturates at X" only when every sweep stopped on a plateau or the SLO; otherwise a lower bound."""
    if s is None or s.rps is None:
        return "no valid point within the SLO"
    if s.found:
        return f"saturates at {fmt.num(s.rps)} req/s" + (f" ({fmt.users(s.users)})" if s.users else "")
    by = f", not saturated by {fmt.users(s.max_users)}" if s.max_users else ", not saturated"
    return f"at least {fmt.num(s.rps)} req/s{by}"


def warmup_text(w: dict[str, Any] | None) -> str:
    """The stored server warm-up in a few words: how long, whether it settled, the JIT compilers' share."""
    if not w:
        return ""
    rps = w.get("windows_rps") or []
    text = (f"{w['seconds']:.1f} s, {len(rps)} x {w['window_seconds']:g} s at {w['users']} users, "
            + ("stable" if w.get("stable") else f"**not stable** within {w['max_seconds']:g} s"))
    if rps:
        text += f" ({fmt.num(rps[0])} -> {fmt.num(rps[-1])} req/s)"
    jit = [x for x in w.get("windows_jit_cpu") or [] if x is not None]
    if jit:
        text += f"; JIT compilers {max(jit):.0%} -> {jit[-1]:.0%} of a core (limit {w['jit_cpu_limit']:.0%})"
    return text


def stop_text(s: SaturationRow | None) -> str:
    if s is None or not s.stop_reasons:
        return fmt.NA
    reasons = list(dict.fromkeys(s.stop_reasons))
    return "; ".join(reasons) if len(reasons) > 1 else reasons[0]


def server_memory(res: ReportResults, server: str, launcher: str) -> tuple[int | None, str]:
    """The server's memory figure: the container's cgroup working set under Docker, else the peak RSS of the
    process tree (frontend + workers), the largest over the sampled phases."""
    rows: list[MemoryRow] = [m for m in res.memory if m.kind == "server" and m.server == server
                             and m.launcher == launcher]
    cgroup = [m.cgroup_bytes for m in rows if m.cgroup_bytes]
    if cgroup:
        return max(cgroup), "container cgroup (working set)"
    peaks = [m.peak_rss_bytes for m in rows if m.peak_rss_bytes]
    return (max(peaks), "peak RSS of the process tree") if peaks else (None, "")


def worker_memory(res: ReportResults, server: str, launcher: str, stack: str, model: str) -> int | None:
    """The peak RSS of the worker process serving `stack` for `model`, the largest over the sampled phases."""
    peaks = [w.peak_rss_bytes for w in res.workers if (w.server, w.launcher, w.stack, w.model)
             == (server, launcher, stack, model)]
    return max(peaks) if peaks else None


def _one_user(points: list[LoadPoint]) -> LoadPoint | None:
    return next((p for p in points if p.mode == "closed" and p.users == 1 and p.valid and p.latency.n), None)


def artifact_of(res: ReportResults, stack: str, model: str) -> ArtifactRow | None:
    """The artifact a served stack runs (by the catalog's exporter and variant; an older run's stack by format)."""
    found = served_format(stack)
    if found is not None:
        key = f"{model}/{found[0].exporter}/{found[1]}"
        return next((a for a in res.artifacts if a.key == key), None)
    fmt_name = stack.partition("/")[2]
    return next((a for a in res.artifacts if a.twin == model and a.format == fmt_name and a.variant == "fp32"), None)


def derive_scorecard(res: ReportResults) -> None:
    sat = {s.key: s for s in res.saturations}
    for key in dict.fromkeys(p.key for p in res.load_points):
        stack, protocol, model, launcher = key
        server = stack.partition("/")[0]
        points = [p for p in res.load_points if p.key == key]
        one = _one_user(points)
        floor = floor_row(res, stack, model)
        art = artifact_of(res, stack, model)
        cold = next((c for c in res.cold_start if c.server == server and c.launcher == launcher
                     and c.stack == f"{stack} {protocol}" and c.model == model), None)
        memory, memory_source = server_memory(res, server, launcher)
        floor_p50 = floor.latency.p50 if floor is not None and floor.latency is not None else None
        served = one.latency.p50 if one is not None else None
        found = served_format(stack)
        res.scorecard.append(ScoreRow(
            stack=stack, protocol=protocol, model=model, launcher=launcher,
            artifact_bytes=art.bytes if art is not None else None, floor_p50_ms=floor_p50, served_p50_ms=served,
            tax_ms=served - floor_p50 if served is not None and floor_p50 is not None else None,
            saturation=sat.get(key), ready_s=cold.start_to_ready_s if cold else None,
            model_load_s=cold.model_load_s if cold else None,
            first_request_ms=cold.first_request_ms if cold else None, memory_bytes=memory,
            memory_source=memory_source, framework=found[0].framework if found else "",
            runtime=found[0].runtime if found else "", worker_bytes=worker_memory(res, server, launcher, stack, model)))


def launcher_pairs(res: ReportResults) -> list[tuple[ScoreRow, ScoreRow]]:
    """(native, docker) scorecard rows of the same stack, protocol and twin."""
    rows = {(r.stack, r.protocol, r.model, r.launcher): r for r in res.scorecard}
    return [(r, rows[(r.stack, r.protocol, r.model, "docker")]) for r in res.scorecard
            if r.launcher == "native" and (r.stack, r.protocol, r.model, "docker") in rows]


def point_at(res: ReportResults, row: ScoreRow, users: int) -> LoadPoint | None:
    return next((p for p in res.load_points if p.key == (row.stack, row.protocol, row.model, row.launcher)
                 and p.mode == "closed" and p.users == users and p.valid and p.latency.n), None)
