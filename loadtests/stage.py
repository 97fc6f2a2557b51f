"""The load stage: load tests of the endpoints of a server session (`serving.session.ServerSession`).

    run_stage(ctx)                     # the pipeline's stage
    run(ctx, endpoints, around=None)   # the same on given endpoints (tests, other sessions)

`run_stage` takes the session the serve stage kept open in this run (`--stages serve load`), or opens one
itself (servers started, parity re-checked, stopped after) when the load stage runs alone on a run folder.
Then:
1. the generator's headroom against the null endpoint (once per run);
2. the endpoints in measuring order (`endpoint_order`); per endpoint (inside `around(endpoint)`, the
   serving side's metric scrape): the server warm-up (`warm_server`, excluded), a closed-loop sweep per
   repeat, its saturation throughput, then open-loop points at `open_loop_fractions` of it;
3. `loadtest.json` rewritten after every endpoint, so a crash keeps what was measured.

A failing endpoint (server killed, locust failure) is marked failed with the reason; the others are
still measured. The quick profile measures only `LoadSettings.twins` and says so (NotRun records).
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager as ContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

from core import cpuidle
from core.config import LoadSettings, Profile
from core.kinds import LoadModeKind
from core.results import NotRun, save, to_json_data
from loadtests.analysis import repeat_summaries
from loadtests.headroom import (
    apply_headrooms,
    generator_cpus,
    headroom_line,
    measure_headrooms,
    server_core_for_null,
)
from loadtests.launch import LocustTarget
from loadtests.modes import LoadJob, get_mode
from loadtests.reference import ReferenceProbe, reference_line
from loadtests.results import EndpointLoad, LoadTestResults
from loadtests.warmup import visits, warm_until_stable
from serving.endpoint import Endpoint
from serving.session import ServerSession

Around = Callable[[Endpoint], ContextManager[Any]]


def server_alive(pids: Sequence[int]) -> bool:
    """Whether any of the server processes is still running (zombies count as gone)."""
    import psutil

    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            continue
    return False


def warm_server(job: LoadJob, result: EndpointLoad) -> str | None:
    """Warm the server until stable before the endpoint's first point (excluded from every figure; how long
    it took is recorded); the locust side's error, if any."""
    result.server_warmup, outcome = warm_until_stable(job)
    return outcome.error


def endpoint_order(endpoints: Sequence[Endpoint]) -> list[Endpoint]:
    """The order endpoints are measured in: as the session lists them (server, model, protocol)."""
    return list(endpoints)


def measure_endpoint(endpoint: Endpoint, settings: LoadSettings, *, payload: str, twin: str | None,
                     log_dir: Path, modes: Sequence[LoadModeKind] = tuple(LoadModeKind),
                     users: list[int] | None = None, rates: list[float] | None = None, workers: int | None = None,
                     extra_options: Sequence[str] = (), stop_rule: bool = True, result: EndpointLoad | None = None,
                     warm: bool = True) -> EndpointLoad:
    """Closed-loop sweep(s) then open-loop points for one endpoint; never raises for the endpoint's own
    failures (they become status="failed" with the points measured before). With `result`, adds to an
    earlier visit's record (its sweeps numbered on); `warm` = warm the server first."""
    cpus = generator_cpus(endpoint.server_cpus) if endpoint.server_cpus else None
    n_workers = settings.workers if workers is None else workers
    target = LocustTarget.for_endpoint(endpoint, payload, twin=twin)
    target.options += list(extra_options)
    result = result or EndpointLoad(endpoint=endpoint.describe(), status="ok", failure=None,
                                    payload={"source": str(payload), "twin": twin, "layout": endpoint.layout},
                                    generator_cpus=sorted(cpus) if cpus else [], workers=n_workers)
    if result.status != "ok":  # failed on an earlier visit
        return result
    name = "-".join(x for x in (endpoint.stack.replace("/", "-"), endpoint.protocol, endpoint.launcher) if x)
    job = LoadJob(target=target, settings=settings, log_dir=log_dir, name=name, cpus=cpus, workers=n_workers,
                  users=users, rates=rates, connections=settings.open_loop_connections, stop_rule=stop_rule,
                  server_pids=list(endpoint.server_pids))

    def check(what: str, outcome_error: str | None) -> bool:
        if endpoint.server_pids and not server_alive(endpoint.server_pids):
            result.status = "failed"
            result.failure = (f"server process(es) {endpoint.server_pids} exited during the {what}; "
                              "the points measured before are kept (errors after it are counted in them)")
            return False
        if outcome_error:
            result.status = "failed"
            result.failure = f"load generator failed during the {what}: {outcome_error.splitlines()[0]}"
            return False
        return True

    try:
        if warm and settings.server_warmup_seconds > 0:
            error = warm_server(job, result)
            if not check("server warm-up", error):
                return result
        for mode in modes:  # in the order given: the open loop's rates come from the closed loop's saturation
            if not get_mode(mode).measure(job, result, check):
                return result
        return result
    except Exception as exc:  # one endpoint's failure must not stop the others: recorded with its reason
        result.status = "failed"
        result.failure = f"{type(exc).__name__}: {exc}"
        return result
    finally:
        result.repeat_summaries = repeat_summaries(
            [p for s in result.sweeps for p in s.points] + result.open_points)


def _label(ep: Endpoint) -> str:
    return f"{ep.stack} {ep.protocol} ({ep.model})" + (f" [{ep.launcher}]" if ep.launcher else "")


def summary_line(measured: EndpointLoad) -> str:
    """One line per endpoint: status, saturation, and each open-loop point's corrected p99 and validity."""
    sat = measured.saturation
    parts = [f"{measured.status}: " + (f"{sat.label} ({'; '.join(sat.stop_reasons)})" if sat else "no saturation")]
    if measured.server_warmup:
        w = measured.server_warmup
        parts.append(f"warm-up {w.seconds:.1f} s, {'stable' if w.stable else 'NOT stable'}")
    for p in measured.open_points:
        p99 = f"{p.latency_ms.stats['p99']:.1f} ms" if p.latency_ms else "n/a"
        frac = f" ({p.target_rate / measured.saturation_rps:.0%})" if measured.saturation_rps else ""
        parts.append(f"open {p.load}{frac}: p99 {p99} " + ("valid" if p.valid else "INVALID: " + "; ".join(
            p.invalid_reasons)))
    if measured.failure:
        parts.append(f"failure: {measured.failure}")
    return "; ".join(parts)


def label_of(profile: Profile) -> str:
    if profile.name == "full":
        return f"full profile: {profile.load.repeats} repeats per point, median and 95% interval"
    return profile.note or f"{profile.name} profile: {profile.load.repeats} repeat(s) per point"


def settings_data(settings: LoadSettings) -> dict[str, Any]:
    return to_json_data(settings)


def run(ctx: Any, endpoints: Sequence[Endpoint], around: Around | None = None) -> LoadTestResults:
    """The pipeline's load stage (see the module doc). Returns what it saved to `loadtest.json`."""
    profile: Profile = ctx.config.profile
    settings = profile.load
    run_dir = ctx.run_dir
    results = LoadTestResults(profile=profile.name, label=label_of(profile), settings=settings_data(settings),
                              locust_version=_locust_version())
    chosen, skipped = [], []
    for ep in endpoint_order(endpoints):
        (chosen if not settings.twins or ep.model in settings.twins else skipped).append(ep)
    for ep in skipped:
        results.not_run.append(NotRun(what=f"load/{ep.stack}/{ep.protocol}/{ep.model}",
                                      reason=f"the {profile.name} profile load-tests only twins {settings.twins}",
                                      enable_command="make deploy-compare PROFILE=full"))
    if not chosen:
        save(results, run_dir.loadtest)
        return results
    with cpuidle.hold(settings.cpu_idle) as idle:  # the headrooms and every endpoint, under one policy
        results.cpu_idle = idle
        ctx.console.print(idle.summary())
        _measure(ctx, chosen, results, around)
    save(results, run_dir.loadtest)  # with the idle time each state took over the stage
    ctx.console.print(idle.summary())
    for h in results.headrooms:
        ctx.console.print(headroom_line(h))
    ctx.console.print(f"load stage: {results.seconds:.0f} s ({results.label.split(':')[0]})")
    return results


def _measure(ctx: Any, chosen: list[Endpoint], results: LoadTestResults, around: Around | None) -> None:
    """The headrooms, then every visit of `visits` (see the module doc); `results` saved after each."""
    settings: LoadSettings = ctx.config.profile.load
    run_dir, t0 = ctx.run_dir, time.perf_counter()
    log_dir = run_dir.logs / "load"
    results.headrooms, failed = measure_headrooms(chosen, settings, str(run_dir.path), log_dir)
    results.not_run += failed
    save(results, run_dir.loadtest)
    server_cpus = set(chosen[0].server_cpus) or server_core_for_null()
    with ReferenceProbe(server_cpus, generator_cpus(server_cpus), log_dir).running() as reference:
        results.reference = reference.record
        _visit_all(ctx, chosen, results, around, reference, log_dir, t0)
        _sample(ctx, reference, "the end of the load stage")
    apply_headrooms(results)
    results.seconds = time.perf_counter() - t0


def _sample(ctx: Any, reference: ReferenceProbe, before: str) -> None:
    s = reference.sample(before)
    if s is not None:
        ctx.console.print(reference_line(s))


def _visit_all(ctx: Any, chosen: list[Endpoint], results: LoadTestResults, around: Around | None,
               reference: ReferenceProbe, log_dir: Path, t0: float) -> None:
    """Every visit of `visits` in order, the reference sampled before each measured one."""
    settings: LoadSettings = ctx.config.profile.load
    run_dir = ctx.run_dir
    measured: dict[int, EndpointLoad] = {}
    schedule = visits(len(chosen), settings.repeats)
    results.order = [[_label(chosen[v.index]) for v in schedule if v.repeat in (r, -1) and LoadModeKind.CLOSED
                      in v.modes] for r in range(settings.repeats)]
    for v in schedule:
        ep = chosen[v.index]
        what = (", ".join(v.modes) or "warm-up") + (f" repeat {v.repeat}" if v.repeat >= 0 else "")
        ctx.console.print(f"load: {ep.stack} {ep.protocol} ({ep.model}" + (f", {ep.launcher}" if ep.launcher else "")
                          + f"): {what}")
        if v.modes:
            _sample(ctx, reference, _label(ep))
        # the server's metrics windows cover measured load only, never the warm-up
        scope = around(ep) if around is not None and v.modes else contextlib.nullcontext()
        once = replace(settings, repeats=1) if v.repeat >= 0 else settings
        try:
            with scope:
                measured[v.index] = measure_endpoint(ep, once, payload=str(run_dir.path), twin=ep.model,
                                                     log_dir=log_dir, modes=v.modes, result=measured.get(v.index),
                                                     warm=v.warm)
        except Exception as exc:  # raised by the serving side's `around` (e.g. a scrape of a dead server)
            reason = f"around({ep.stack}/{ep.protocol}) failed: {type(exc).__name__}: {exc}"
            if v.index not in measured:
                measured[v.index] = EndpointLoad(endpoint=ep.describe(), status="failed", failure=reason,
                                                 payload={}, generator_cpus=[], workers=0)
            else:
                m = measured[v.index]
                m.failure = "; ".join(x for x in (m.failure, reason) if x)
        m = measured[v.index]
        if LoadModeKind.CLOSED in v.modes:
            m.order.append(results.order[max(v.repeat, 0)].index(_label(ep)))
        results.endpoints = [measured[i] for i in sorted(measured)]
        results.seconds = time.perf_counter() - t0
        save(results, run_dir.loadtest)
        if v.modes:
            ctx.console.print("  " + summary_line(m))


def run_stage(ctx: Any) -> None:
    """The pipeline's load stage on the serve stage's session, or on a session of its own."""
    kept: ServerSession | None = ctx.resources.get(ServerSession.KEY)
    if kept is not None:
        try:
            load_session(ctx, kept.use("load"))
        finally:  # stop the servers now rather than when the run ends
            ctx.release(ServerSession.KEY)
        return
    with ServerSession(ctx, opened_by="load") as session:
        load_session(ctx, session.use("load"))


def load_session(ctx: Any, session: ServerSession) -> None:
    if not session.endpoints:
        session.record.loadtest = "no endpoint passed served parity: nothing to load-test"
        failure = session.failure()
        if failure is not None:
            raise failure
        return
    session.record.loadtest = "started; the load stage did not finish (see stages.json and loadtest.json)"
    run(ctx, session.endpoints, around=session.around)
    session.record.loadtest = "ran"


def _locust_version() -> str:
    from importlib.metadata import version

    return version("locust")
