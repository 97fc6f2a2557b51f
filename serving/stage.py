"""The serve stage: every server that can run here (TorchServe natively; TF Serving when its binary or
image exists, else a NotRun record), each serving all twins x its formats, brought up by a
`ServerSession` (start, ready, cold start, memory, served parity; see serving/session.py), then a short
sequential latency probe per endpoint that passed parity; `serving.json` is saved on every exit path.

When the load stage comes next in the same run, the session stays open on the RunContext (the pipeline
closes it when the run ends), so the load test times the servers this stage checked; otherwise the
servers are stopped at the end of this stage.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from deploy_compare.core.results import Measurement
from deploy_compare.core.stats import WindowPolicy, measure_window, summarize
from deploy_compare.serving.clients import make_client
from deploy_compare.serving.endpoint import Endpoint
from deploy_compare.serving.session import ServerSession, heldout

if TYPE_CHECKING:
    from deploy_compare.core.context import RunContext
    from deploy_compare.core.rundir import RunDir

# The sequential probe: one request at a time, batch 1, after a short warm-up. A first look at
# per-protocol latency, not the load test (which owns the real windows).
PROBE = WindowPolicy(warmup_seconds=0.1, warmup_samples=5, min_seconds=0.25, min_samples=50, max_seconds=15.0)
LOAD_STAGE = "load"  # the stage that reuses this stage's servers when it follows in the same run


def sequential_probe(ep: Endpoint, run_dir: RunDir) -> Measurement:
    x, _, _ = heldout(run_dir, ep.model, ep.layout)
    with make_client(ep) as client:
        payload = client.encode(x[:1])
        window = measure_window(lambda: client.send(payload), PROBE)
    ms = [s * 1e3 for s in window.samples]
    return Measurement(name=f"{ep.stack}/{ep.served_name}/{ep.protocol}", unit="ms", higher_is_better=False,
                       samples=ms, stats=summarize(ms))


def probe(session: ServerSession) -> None:
    """The sequential probe of every endpoint that passed parity, stored with its server's record."""
    session.record.probe = {k: float(v) for k, v in asdict(PROBE).items()}
    for key, endpoints in session.fit.items():
        run = session.runs[key]
        run.sequential = [sequential_probe(ep, session.run_dir) for ep in endpoints]
        for m in run.sequential:
            session.ctx.console.print(f"  {m.name}: sequential batch-1 p50 {m.stats['p50']:.2f} ms "
                                      f"(n={len(m.samples)})")


def run_stage(ctx: RunContext) -> None:
    t0 = time.perf_counter()
    session = ServerSession(ctx, opened_by="serve")
    with contextlib.ExitStack() as scope:
        if LOAD_STAGE in ctx.upcoming:
            ctx.keep(ServerSession.KEY, session)  # closed by the pipeline when the run ends
        else:
            scope.enter_context(session)
        try:
            probe(session)
        finally:
            session.record.seconds = time.perf_counter() - t0
            session.save()
        failure = session.failure()
        if failure is not None:
            raise failure
