"""The serve stage: every server that can run here (TorchServe natively; TF Serving when its binary
or image exists, else a NotRun record), each serving all twins x its formats.

Per server: start -> ready (bounded) -> cold start (model load from the server's metrics, first
request per endpoint) -> served parity over REST and gRPC on the held-out batch (same tolerances as
the parity gate) -> a short sequential latency probe -> the load test of the endpoints that passed
(`loadtests.stage.run(ctx, endpoints, around=...)`, with the server's metrics scraped around each
endpoint's window) -> stop. A server that fails is not timed and says why; `serving.json` is saved
on every exit path with whatever was gathered.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np
from rich.markup import escape

from core import proc, results
from core.results import Measurement
from core.stats import WindowPolicy, measure_window, summarize
from models.parity import ParityTolerance, compare
from serving.base import SERVERS, Server, ServerError
from serving.clients import make_client
from serving.endpoint import Endpoint
from serving.metrics import MetricsWindow, make_around
from serving.results import ColdStart, ServedParity, ServerMemory, ServerRun, ServingResults
from serving.stacks import import_servers, plan_server

if TYPE_CHECKING:
    from core.context import RunContext
    from core.rundir import RunDir

# The sequential probe: one request at a time, batch 1, after a short warm-up. A first look at
# per-protocol latency, not the load test (which owns the real windows).
PROBE = WindowPolicy(warmup_seconds=0.1, warmup_samples=5, min_seconds=0.25, min_samples=50, max_seconds=15.0)


def heldout(run_dir: RunDir, twin: str, layout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x in `layout`, y, logits_ref) of a twin's held-out batch."""
    from models.data import to_layout
    from models.zoo import get_twin

    data = np.load(run_dir.heldout(twin))
    return to_layout(data["x"], get_twin(twin).keras_layout, layout), data["y"], data["logits_ref"]


def served_parity(ep: Endpoint, run_dir: RunDir, tolerance: ParityTolerance) -> ServedParity:
    row = ServedParity(stack=ep.stack, protocol=ep.protocol, served_name=ep.served_name, twin=ep.model,
                       layout=ep.layout)
    x, y, ref = heldout(run_dir, ep.model, ep.layout)
    try:
        with make_client(ep) as client:
            logits = client.predict(x)
        row.figures = compare(logits, ref, y, tolerance)
    except Exception as exc:  # recorded: the endpoint is then not timed
        row.error = f"{type(exc).__name__}: {exc}"
    return row


def first_request_seconds(ep: Endpoint, run_dir: RunDir) -> float:
    x, _, _ = heldout(run_dir, ep.model, ep.layout)
    with make_client(ep) as client:
        payload = client.encode(x[:1])
        t0 = time.perf_counter()
        client.send(payload)
        return time.perf_counter() - t0


def sequential_probe(ep: Endpoint, run_dir: RunDir) -> Measurement:
    x, _, _ = heldout(run_dir, ep.model, ep.layout)
    with make_client(ep) as client:
        payload = client.encode(x[:1])
        window = measure_window(lambda: client.send(payload), PROBE)
    ms = [s * 1e3 for s in window.samples]
    return Measurement(name=f"{ep.stack}/{ep.served_name}/{ep.protocol}", unit="ms", higher_is_better=False,
                       samples=ms, stats=summarize(ms))


def sample_memory(server: Server, phase: str) -> ServerMemory:
    return ServerMemory(phase=phase, **proc.tree_memory(server.pids()))


def bring_up(server: Server, run_dir: RunDir, tolerance: ParityTolerance, console) -> tuple[ServerRun, list[Endpoint]]:
    """Start, ready, cold start, parity, probe. Returns the record and the endpoints fit for timing."""
    run = ServerRun(server=server.name, launcher=server.launcher.name, settings={},
                    log=str(server.log_path.relative_to(run_dir.path)))
    try:
        server.start()
        ready = server.wait_ready(server.settings.ready_timeout_s)
        run.settings = server.record()
        endpoints = server.endpoints()
        run.endpoints = [ep.describe() for ep in endpoints]
        cold = ColdStart(server=server.name, launcher=server.launcher.name, start_to_ready_s=ready)
        try:
            cold.model_load_s = server.model_load_seconds()
            cold.model_load_source = "server metrics"
        except Exception as exc:
            cold.model_load_source = f"unavailable: {type(exc).__name__}: {exc}"
        for ep in endpoints:
            key = f"{ep.served_name}/{ep.protocol}"
            try:
                cold.first_request_s[key] = first_request_seconds(ep, run_dir)
            except Exception as exc:  # recorded; the parity check next keeps this endpoint from being timed
                cold.first_request_errors[key] = f"{type(exc).__name__}: {exc}"
        run.cold_start = cold
        run.memory.append(sample_memory(server, "ready"))
        console.print(f"{server.name}: ready in {ready:.1f} s ({server.launcher.name}); model load "
                      + ", ".join(f"{k} {v:.2f} s" for k, v in cold.model_load_s.items()))
        run.parity = [served_parity(ep, run_dir, tolerance) for ep in endpoints]
        passed = {(p.served_name, p.protocol) for p in run.parity if p.ok}
        failed = [f"{p.served_name}/{p.protocol}: {p.problem()}" for p in run.parity if not p.ok]
        if failed:
            run.error = "served parity failed (not timed): " + "; ".join(failed)
            console.print(f"[red]{server.name}:[/] {escape(run.error)}")
        fit = [ep for ep in endpoints if (ep.served_name, ep.protocol) in passed]
        run.sequential = [sequential_probe(ep, run_dir) for ep in fit]
        for m in run.sequential:
            console.print(f"  {m.name}: sequential batch-1 p50 {m.stats['p50']:.2f} ms (n={len(m.samples)})")
        run.timed = [f"{ep.served_name}/{ep.protocol}" for ep in fit]
        return run, fit
    except ServerError as exc:
        run.error = str(exc).split("\n--- last lines ---")[0]
        console.print(f"[red]{server.name} failed:[/] {escape(run.error)}")
        return run, []


def load_test_module():
    """E's load-test stage. Missing module = a broken install: fail loudly, never skip silently."""
    try:
        return importlib.import_module("loadtests.stage")
    except ModuleNotFoundError as exc:
        if exc.name != "loadtests.stage":
            raise
        raise RuntimeError("loadtests.stage is missing: the serve stage hands its endpoints to the load test; "
                           "reinstall deploy-compare (pip install -e .)") from None


def run_stage(ctx: RunContext) -> None:
    settings = ctx.config.profile.serve
    run_dir = ctx.run_dir
    t0 = time.perf_counter()
    tolerance = ParityTolerance()
    out = ServingResults(run_id=ctx.config.run_id, launcher_requested=settings.launcher, tolerance=tolerance,
                         probe={k: float(v) for k, v in asdict(PROBE).items()})
    loadtests = load_test_module()
    import_servers()
    servers: list[Server] = []
    fit: list[Endpoint] = []
    windows: list[MetricsWindow] = []
    load_s = 0.0
    try:
        for name in SERVERS.names():  # plan (and verify) every server before starting any: a tampered
            plan = plan_server(name, run_dir, settings)  # artifact or a taken port stops the stage here
            if plan.server is not None:
                servers.append(plan.server)
            else:
                assert plan.not_run is not None
                out.not_run.append(plan.not_run)
                ctx.console.print(f"[yellow]{name}: not run:[/] {escape(plan.not_run.reason)}\n"
                                  f"  enable with: {escape(plan.not_run.enable_command)}")
        for server in servers:
            run, endpoints = bring_up(server, run_dir, tolerance, ctx.console)
            out.servers.append(run)
            fit += endpoints
        results.save(out, run_dir.serving)
        if fit:
            t_load = time.perf_counter()
            loadtests.run(ctx, fit, around=make_around(windows))
            load_s = time.perf_counter() - t_load
            out.loadtest = "ran"
        else:
            out.loadtest = "no endpoint passed served parity: nothing to load-test"
    finally:
        for server, run in zip(servers, out.servers):
            if server.handle is not None and server.handle.alive():
                run.memory.append(sample_memory(server, "after load"))
        for server in servers:
            server.stop()
        by_server = {r.server: r for r in out.servers}
        for w in windows:
            server_name = w.stack.split("/")[0]
            if server_name in by_server:
                by_server[server_name].metrics.append(w)
        out.seconds = time.perf_counter() - t0 - load_s
        results.save(out, run_dir.serving)
    failed = [r for r in out.servers if r.error]
    if failed and not fit:
        raise ServerError("no server could be timed: " + " | ".join(f"{r.server}: {r.error}" for r in failed))
