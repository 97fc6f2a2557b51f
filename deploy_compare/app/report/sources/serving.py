"""Servers: serving.json (settings, cold start, served parity, sequential probe, server-side metrics windows,
servers that could not run)."""
from __future__ import annotations

from pathlib import Path

from deploy_compare.app.report.model import (
    ColdStartRow,
    MemoryRow,
    ReportResults,
    ServedParityRow,
    ServerWindow,
    WorkerMemoryRow,
)
from deploy_compare.app.report.sources import source
from deploy_compare.core import results


def _ms(m: results.Measurement, stat: str) -> float | None:
    value = m.stats.get(stat)
    return None if value is None else value * (1e3 if m.unit == "s" else 1.0)


def _window(server: str, launcher: str, w, twin: str) -> ServerWindow:
    """A metrics window as the report shows it. A server that counts requests but adds no time for them (TorchServe
    0.12 leaves its latency counters at 0 for gRPC requests) has no server-side figure: None, with the reason."""
    d = w.derived
    requests = w.delta.get("ts_inference_requests_total", w.delta.get(":tensorflow:serving:request_latency_count"))
    total = d.get("mean_inference_ms", d.get("mean_request_latency_ms"))
    queue = d.get("mean_queue_ms")
    error = w.error or ""
    if total == 0.0 and requests:
        total = queue = None
        error = f"{server} counted {requests:.0f} {w.protocol} requests in the window but recorded no time for them"
    return ServerWindow(server=server, stack=w.stack, protocol=w.protocol, model=twin, seconds=w.seconds,
                        requests=requests, total_ms=total, queue_ms=queue, error=error, launcher=launcher,
                        series=list(getattr(w, "series", [])), sample_interval_s=getattr(w, "sample_interval_s", None))


@source("serving.json", "serve", "serving", "serving-tax", "scorecard", "containers")
def serving(path: Path, res: ReportResults) -> list[results.NotRun]:
    from deploy_compare.serving.results import ServingResults

    sv = results.load(ServingResults, path)
    failures: list[results.NotRun] = []
    for run in sv.servers:
        if res.settings is not None:
            res.settings.serve[f"{run.server}: launcher"] = run.launcher
            res.settings.serve.update({f"{run.server}: {k}": str(v) for k, v in sorted(run.settings.items())})
        if run.error:
            failures.append(results.NotRun(what=f"{run.server} ({run.launcher})", reason=run.error,
                                           enable_command=f"see the server log {run.log}, fix the cause, rerun "
                                                          "the serve stage"))
        stack_of = {(e.get("served_name"), e.get("protocol")): e.get("stack", "") for e in run.endpoints}
        twin_of = {e.get("served_name"): e.get("model", "") for e in run.endpoints}
        probes = {m.name: m for m in run.sequential}
        cs = run.cold_start
        if cs is not None:
            for key, first_s in cs.first_request_s.items():
                name, _, protocol = key.rpartition("/")
                stack = stack_of.get((name, protocol), run.server)
                probe = probes.get(f"{stack}/{name}/{protocol}")
                res.cold_start.append(ColdStartRow(
                    server=run.server, stack=f"{stack} {protocol}", model=twin_of.get(name) or name,
                    start_to_ready_s=cs.start_to_ready_s, model_load_s=cs.model_load_s.get(name),
                    first_request_ms=first_s * 1e3, steady_p50_ms=_ms(probe, "p50") if probe else None,
                    source=cs.model_load_source, launcher=run.launcher,
                    started_by=getattr(cs, "started_by", "")))
        for sp in run.parity:
            f = sp.figures
            res.served_parity.append(ServedParityRow(
                stack=sp.stack, protocol=sp.protocol, model=sp.twin, max_abs_error=f.max_abs_err if f else float("nan"),
                top1_agreement=f.top1_agreement if f else float("nan"), passed=sp.ok, launcher=run.launcher,
                gated=f.gated if f else True))
        stack_by_name = {e.get("served_name"): e.get("stack", "") for e in run.endpoints}
        for m in run.memory:
            for name, w in getattr(m, "workers", {}).items():
                res.workers.append(WorkerMemoryRow(
                    server=run.server, launcher=run.launcher, served_name=name, stack=stack_by_name.get(name, ""),
                    model=twin_of.get(name) or name, phase=m.phase, rss_bytes=w.rss_bytes,
                    peak_rss_bytes=w.peak_rss_bytes))
        for m in run.memory:
            cgroup = getattr(m, "cgroup_working_set_bytes", None) or getattr(m, "cgroup_usage_bytes", None)
            what = (f"{run.server} ({run.launcher}), {m.phase}: {m.processes} processes (frontend + workers), "
                    f"current RSS {m.rss_bytes / 2**20:.0f} MiB")
            res.memory.append(MemoryRow(what=what + (f", container cgroup {cgroup / 2**20:.0f} MiB" if cgroup else ""),
                                        kind="server", peak_rss_bytes=m.peak_rss_bytes, server=run.server,
                                        launcher=run.launcher, cgroup_bytes=cgroup))
        if run.launcher not in res.launchers:
            res.launchers.append(run.launcher)
        for w in run.metrics:
            res.server_windows.append(_window(run.server, run.launcher, w, twin_of.get(w.model) or w.model))
    if sv.loadtest and sv.loadtest != "ran":
        failures.append(results.NotRun(what="load test", reason=sv.loadtest,
                                       enable_command="fix the cause above, then rerun the serve stage"))
    return [*sv.not_run, *failures]
