"""A server session: every server that can run here, up, checked and measured, for as long as a stage
(or two) needs it; everything stopped on exit.

    with ServerSession(ctx, opened_by="serve") as session:
        session.endpoints            # the endpoints that passed served parity (fit for timing)
        with session.around(ep): ... # the server's own metrics scraped before/after a load window

Entering the session plans every server (verified artifacts, ports, launcher) before starting any, then
per server: start -> ready (bounded) -> cold start (model load from the server's metrics, first request
per endpoint) -> memory at ready -> served parity on the held-out batch. Leaving it samples memory after
use, stops every server it started and saves the record (`serving.json`) -- also when the block raised.

Servers are keyed by (server, launcher), so one session can hold the same server kind under several
launchers; every endpoint carries its launcher.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from rich.markup import escape

from deploy_compare.core import proc, results
from deploy_compare.core.results import NotRun
from deploy_compare.models.heldout import load_batch
from deploy_compare.models.parity import ParityTolerance, compare_batch
from deploy_compare.serving.base import Server, ServerError, chosen_servers
from deploy_compare.serving.clients import make_client
from deploy_compare.serving.endpoint import Endpoint
from deploy_compare.serving.metrics import MetricsWindow, make_around
from deploy_compare.serving.results import ColdStart, ServedParity, ServerMemory, ServerRun, ServingResults
from deploy_compare.serving.stacks import import_servers, plan_servers

if TYPE_CHECKING:
    from deploy_compare.core.context import RunContext
    from deploy_compare.core.rundir import RunDir

ServerKey = tuple[str, str]  # (server, launcher)
# served parity sends the batch in requests of at most this many input values: a 224x224x3 image is 150,528
# floats, ~3 MB as JSON; the whole 16-image batch (48 MB) got TorchServe's 413 (default limit 6.5 MB) and a
# reset gRPC stream (run q1)
MAX_VALUES_PER_REQUEST = 160_000


def heldout(run_dir: RunDir, twin: str, layout: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(x in `layout`, y or None, reference outputs) of a model's reference batch."""
    batch = load_batch(run_dir.heldout(twin), twin)
    return batch.input_in(layout), batch.y, batch.ref


def served_parity(ep: Endpoint, run_dir: RunDir, tolerance: ParityTolerance) -> ServedParity:
    """The endpoint's answers to the held-out batch against the reference: gated for fp32, reported (never
    gated) for a quantized variant, as the artifacts' own parity (models/parity.py)."""
    row = ServedParity(stack=ep.stack, protocol=ep.protocol, served_name=ep.served_name, twin=ep.model,
                       layout=ep.layout, variant=ep.variant)
    batch = load_batch(run_dir.heldout(ep.model), ep.model)
    try:
        x = batch.input_in(ep.layout)
        rows = max(1, MAX_VALUES_PER_REQUEST // int(np.prod(x.shape[1:])))
        with make_client(ep) as client:
            out = np.concatenate([client.predict(x[i:i + rows]) for i in range(0, len(x), rows)])
        row.figures = compare_batch(out, batch, tolerance if ep.variant == "fp32" else None)
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


def sample_memory(server: Server, phase: str) -> ServerMemory:
    """The process tree's RSS, plus the container's cgroup figures under the Docker launcher, and each
    model's worker process on its own (what a framework in a worker costs)."""
    cgroup = server.handle.memory() if server.handle is not None else {}
    try:
        workers, workers_error = server.worker_memory(), ""
    except Exception as exc:  # recorded: the tree's figures stand without the per-worker split
        workers, workers_error = {}, f"{type(exc).__name__}: {exc}"
    return ServerMemory(phase=phase, **proc.tree_memory(server.pids()), **cgroup, workers=workers,
                        workers_error=workers_error)


def key_of(server: Server) -> ServerKey:
    return (server.name, server.launcher.name)


class ServerSession:
    """See the module doc. `opened_by` names the stage that opened it (recorded); `use(stage)` says which
    stage used it last, which names the memory sample taken on exit ("after <stage>")."""

    KEY = "servers"  # under this key the serve stage keeps the session on the RunContext for the load stage

    def __init__(self, ctx: RunContext, opened_by: str) -> None:
        self.ctx = ctx
        self.run_dir = ctx.run_dir
        self.settings = ctx.config.profile.serve
        self.tolerance = ParityTolerance()
        self.record = ServingResults(run_id=ctx.config.run_id, launcher_requested=self.settings.launcher,
                                     tolerance=self.tolerance, probe={}, opened_by=opened_by)
        self.servers: dict[ServerKey, Server] = {}
        self.runs: dict[ServerKey, ServerRun] = {}
        self.fit: dict[ServerKey, list[Endpoint]] = {}
        self.last_use = opened_by
        self._t0 = time.perf_counter()
        self._closed = False

    # --- the endpoints a stage may time
    @property
    def endpoints(self) -> list[Endpoint]:
        return [ep for eps in self.fit.values() for ep in eps]

    def use(self, stage: str) -> ServerSession:
        self.last_use = stage
        return self

    @contextlib.contextmanager
    def around(self, endpoint: Endpoint) -> Iterator[MetricsWindow]:
        """The server's metrics scraped before and after the block, stored with its server's record."""
        run = self.runs[(endpoint.server, endpoint.launcher)]
        with make_around(run.metrics)(endpoint) as window:
            yield window

    def save(self) -> None:
        results.save(self.record, self.run_dir.serving)

    # --- lifecycle
    def __enter__(self) -> ServerSession:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        console = self.ctx.console
        earlier = self._earlier_probe()
        import_servers()
        self.record.not_run += self._twins_left_out()
        planned: list[Server] = []
        for name in chosen_servers(self.settings):  # plan (and verify) every server before starting any: a tampered
            for plan in plan_servers(name, self.run_dir, self.settings):  # artifact or a taken port stops here
                if plan.server is not None:  # (`--launcher both`: one plan per launcher)
                    planned.append(plan.server)
                    continue
                assert plan.not_run is not None
                self.record.not_run.append(plan.not_run)
                console.print(f"[yellow]{plan.not_run.what}: not run:[/] {escape(plan.not_run.reason)}\n"
                              f"  enable with: {escape(plan.not_run.enable_command)}")
        for server in planned:
            key = key_of(server)
            if key in self.servers:
                raise ValueError(f"{key[0]} ({key[1]}) planned twice in one session")
            self.servers[key] = server  # before it starts: close() stops whatever was started
            run, fit = self._bring_up(server)
            run.sequential = earlier.get(key, [])
            self.runs[key] = run
            self.fit[key] = fit
            self.record.servers.append(run)
        self.save()

    def _twins_left_out(self) -> list[NotRun]:
        """The twins the manifest holds that this profile does not serve (`ServeSettings.twins`), as NotRun."""
        from deploy_compare.models.exporters.stage import load_manifest

        if not self.settings.twins:
            return []
        profile = self.ctx.config.profile.name
        twins = sorted({r.twin for r in load_manifest(self.run_dir).artifacts} - set(self.settings.twins))
        return [NotRun(what=f"serve/{twin}", reason=f"the {profile} profile serves only twins {self.settings.twins}",
                       enable_command="make deploy-compare PROFILE=full") for twin in twins]

    def _earlier_probe(self) -> dict[ServerKey, list]:
        """A session opened by a later stage rewrites `serving.json`: it keeps the serve stage's sequential
        probe from the file it replaces (the figures of those servers' earlier run, labelled by its policy)."""
        path = self.run_dir.serving
        if self.record.opened_by == "serve" or not path.exists():
            return {}
        earlier = results.load(ServingResults, path)
        self.record.probe = earlier.probe
        self.record.seconds = earlier.seconds
        return {(r.server, r.launcher): r.sequential for r in earlier.servers}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for key, server in self.servers.items():
                if key in self.runs and server.handle is not None and server.handle.alive():
                    self.runs[key].memory.append(sample_memory(server, f"after {self.last_use}"))
        finally:
            try:
                for server in self.servers.values():
                    server.stop()
            finally:
                self.record.session_seconds = time.perf_counter() - self._t0
                self.save()

    def failure(self) -> ServerError | None:
        """When no endpoint can be timed because servers failed: the error saying which and why."""
        failed = [r for r in self.record.servers if r.error]
        if failed and not self.endpoints:
            return ServerError("no server could be timed: "
                               + " | ".join(f"{r.server} ({r.launcher}): {r.error}" for r in failed))
        return None

    def _bring_up(self, server: Server) -> tuple[ServerRun, list[Endpoint]]:
        """Start, ready, cold start, memory at ready, parity. Returns the record and the endpoints that passed."""
        console, run_dir = self.ctx.console, self.run_dir
        run = ServerRun(server=server.name, launcher=server.launcher.name, settings={},
                        log=str(server.log_path.relative_to(run_dir.path)))
        try:
            server.start()
            ready = server.wait_ready(server.settings.ready_timeout_s)
            run.settings = {**server.record(), **server.handle.describe()}  # + the container, if any
            endpoints = [replace(ep, launcher=server.launcher.name) for ep in server.endpoints()]
            run.endpoints = [ep.describe() for ep in endpoints]
            cold = ColdStart(server=server.name, launcher=server.launcher.name, start_to_ready_s=ready,
                             started_by=server.launcher.started_by)
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
            run.parity = [served_parity(ep, run_dir, self.tolerance) for ep in endpoints]
            passed = {(p.served_name, p.protocol) for p in run.parity if p.ok}
            failed = [f"{p.served_name}/{p.protocol}: {p.problem()}" for p in run.parity if not p.ok]
            if failed:
                run.error = "served parity failed (not timed): " + "; ".join(failed)
                console.print(f"[red]{server.name} ({server.launcher.name}):[/] {escape(run.error)}")
            fit = [ep for ep in endpoints if (ep.served_name, ep.protocol) in passed]
            run.timed = [f"{ep.served_name}/{ep.protocol}" for ep in fit]
            return run, fit
        except ServerError as exc:
            run.error = str(exc).split("\n--- last lines ---")[0]
            console.print(f"[red]{server.name} ({server.launcher.name}) failed:[/] {escape(run.error)}")
            return run, []
