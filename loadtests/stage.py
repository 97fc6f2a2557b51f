"""The load stage: load tests of the endpoints of a server session (`deploy_compare.serving.session.ServerSession`).

    run_stage(ctx)                     # the pipeline's stage
    run(ctx, endpoints, around=None)   # the same on given endpoints (tests, other sessions)

`run_stage` takes the session the serve stage kept open in this run (`--stages serve load`), or opens one
itself (servers started, parity re-checked, stopped after) when the load stage runs alone on a run folder.
Then:
1. the generator's headroom against the null endpoint (once per run);
2. the endpoints in measuring order (`endpoint_order`); per endpoint (inside `around(endpoint)`, the
   serving side's metric scrape): the server warm-up (`warm_server`, excluded), a closed-loop sweep per
   repeat, its saturation throughput, then open-loop points at `open_loop_fractions` of it;
3. `loadtest.json` and `load_points.csv` (one row per point, `deploy_compare.loadtests.table`) rewritten after
   every endpoint, so a crash keeps what was measured.

A failing endpoint (server killed, locust failure) is marked failed with the reason; the others are
still measured. The quick profile measures only `LoadSettings.twins` and says so (NotRun records).
"""
from __future__ import annotations

import contextlib
import fnmatch
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager as ContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

from deploy_compare.core import cpuidle
from deploy_compare.core.config import LoadSettings, Profile
from deploy_compare.core.kinds import LoadModeKind
from deploy_compare.core.results import NotRun, save, to_json_data
from deploy_compare.core.stats import PairedRatio
from deploy_compare.loadtests.analysis import repeat_summaries
from deploy_compare.loadtests.headroom import (
    apply_headrooms,
    generator_cpus,
    headroom_line,
    measure_headrooms,
    server_core_for_null,
)
from deploy_compare.loadtests.launch import LocustTarget
from deploy_compare.loadtests.modes import LoadJob, get_mode
from deploy_compare.loadtests.paired import (
    PairedEndpoint,
    measure_paired,
    measure_paired_open,
    paired_comparisons,
    paired_steps,
)
from deploy_compare.loadtests.reference import ReferenceProbe, reference_line
from deploy_compare.loadtests.results import EndpointLoad, LoadTestResults, endpoint_label
from deploy_compare.loadtests.table import write_csv
from deploy_compare.loadtests.warmup import visits, warm_until_stable
from deploy_compare.serving.catalog import served_format
from deploy_compare.serving.endpoint import Endpoint
from deploy_compare.serving.session import ServerSession

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


def choose_endpoints(endpoints: Sequence[Endpoint], settings: LoadSettings,
                     profile: str) -> tuple[list[Endpoint], list[NotRun]]:
    """The endpoints to load-test, in measuring order (`LoadSettings.twins`, `.variants`, `.exclude`), and a NotRun
    for each one left out."""
    chosen, left_out = [], []
    scope = dict(settings.twin_formats)
    for ep in endpoint_order(endpoints):
        what = f"load/{ep.stack}/{ep.protocol}/{ep.model}"
        if settings.twins and ep.model not in settings.twins:
            left_out.append(NotRun(what=what, reason=f"the {profile} profile load-tests only twins {settings.twins}",
                                   enable_command="make deploy-compare PROFILE=full"))
        elif ep.variant not in settings.variants:
            left_out.append(NotRun(what=what, reason=f"the {profile} profile load-tests only variants "
                                                     f"{settings.variants} (its served parity is reported)",
                                   enable_command="make deploy-compare PROFILE=exhaustive"))
        elif any(fnmatch.fnmatch(f"{ep.stack}/{ep.protocol}", p) or fnmatch.fnmatch(what.removeprefix("load/"), p)
                 for p in settings.exclude):
            left_out.append(NotRun(what=what, reason=f"the {profile} profile leaves out {', '.join(settings.exclude)}",
                                   enable_command="make deploy-compare PROFILE=full"))
        elif ep.model in scope and _exporter(ep) not in scope[ep.model]:
            left_out.append(NotRun(what=what, reason=f"the {profile} profile load-tests {ep.model} only in "
                                                     f"{', '.join(scope[ep.model])} (its served parity is reported)",
                                   enable_command="make deploy-compare PROFILE=full"))
        else:
            chosen.append(ep)
    return chosen, left_out


def _exporter(ep: Endpoint) -> str:
    found = served_format(ep.stack)
    return found[0].exporter if found else ep.stack.partition("/")[2]


def endpoint_job(endpoint: Endpoint, settings: LoadSettings, *, payload: str, twin: str | None, log_dir: Path,
                 users: list[int] | None = None, rates: list[float] | None = None, workers: int | None = None,
                 extra_options: Sequence[str] = (), stop_rule: bool = True) -> LoadJob:
    """What a load mode needs to measure `endpoint`: its locust target, the generator's cores and workers."""
    cpus = generator_cpus(endpoint.server_cpus) if endpoint.server_cpus else None
    target = LocustTarget.for_endpoint(endpoint, payload, twin=twin)
    target.options += list(extra_options)
    name = "-".join(x for x in (endpoint.stack.replace("/", "-"), endpoint.protocol, endpoint.launcher) if x)
    return LoadJob(target=target, settings=settings, log_dir=log_dir, name=name, cpus=cpus,
                   workers=settings.workers if workers is None else workers, users=users, rates=rates,
                   connections=settings.open_loop_connections, stop_rule=stop_rule,
                   server_pids=list(endpoint.server_pids))


def measure_endpoint(endpoint: Endpoint, settings: LoadSettings, *, payload: str, twin: str | None,
                     log_dir: Path, modes: Sequence[LoadModeKind] = tuple(LoadModeKind),
                     users: list[int] | None = None, rates: list[float] | None = None, workers: int | None = None,
                     extra_options: Sequence[str] = (), stop_rule: bool = True, result: EndpointLoad | None = None,
                     warm: bool = True) -> EndpointLoad:
    """Closed-loop sweep(s) then open-loop points for one endpoint; never raises for the endpoint's own
    failures (they become status="failed" with the points measured before). With `result`, adds to an
    earlier visit's record (its sweeps numbered on); `warm` = warm the server first."""
    job = endpoint_job(endpoint, settings, payload=payload, twin=twin, log_dir=log_dir, users=users, rates=rates,
                       workers=workers, extra_options=extra_options, stop_rule=stop_rule)
    result = result or EndpointLoad(endpoint=endpoint.describe(), status="ok", failure=None,
                                    payload={"source": str(payload), "twin": twin, "layout": endpoint.layout},
                                    generator_cpus=sorted(job.cpus) if job.cpus else [], workers=job.workers)
    if result.status != "ok":  # failed on an earlier visit
        return result

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
    return endpoint_label(ep.stack, ep.protocol, ep.model, ep.launcher)


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
    if profile.name == "full" and not profile.load.paired_rounds:
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
    chosen, left_out = choose_endpoints(endpoints, settings, profile.name)
    results.not_run += left_out
    if not chosen:
        _save(results, run_dir)
        return results
    with cpuidle.hold(settings.cpu_idle) as idle:  # the headrooms and every endpoint, under one policy
        results.cpu_idle = idle
        ctx.console.print(idle.summary())
        _measure(ctx, chosen, results, around)
    _save(results, run_dir)  # with the idle time each state took over the stage
    ctx.console.print(idle.summary())
    for h in results.headrooms:
        ctx.console.print(headroom_line(h))
    ctx.console.print(f"load stage: {results.seconds:.0f} s ({results.label.split(':')[0]})")
    return results


def _save(results: LoadTestResults, run_dir: Any) -> None:
    """loadtest.json and, beside it, load_points.csv from the same results."""
    save(results, run_dir.loadtest)
    write_csv(results, run_dir.load_points)


def _measure(ctx: Any, chosen: list[Endpoint], results: LoadTestResults, around: Around | None) -> None:
    """The headrooms, then every visit of `visits` (see the module doc); `results` saved after each."""
    settings: LoadSettings = ctx.config.profile.load
    run_dir, t0 = ctx.run_dir, time.perf_counter()
    log_dir = run_dir.logs / "load"
    results.headrooms, failed = measure_headrooms(chosen, settings, str(run_dir.path), log_dir,
                                                  users=paired_steps(settings)[0] if settings.paired_rounds else None)
    results.not_run += failed
    _save(results, run_dir)
    server_cpus = set(chosen[0].server_cpus) or server_core_for_null()
    with ReferenceProbe(server_cpus, generator_cpus(server_cpus), log_dir).running() as reference:
        results.reference = reference.record
        visit = _visit_paired if settings.paired_rounds > 0 else _visit_all
        visit(ctx, chosen, results, around, reference, log_dir, t0)
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
        _save(results, run_dir)
        if v.modes:
            ctx.console.print("  " + summary_line(m))


def _alive(e: PairedEndpoint) -> bool:
    return not e.server_pids or server_alive(e.server_pids)


def _server_key(ep: Endpoint) -> str:
    return f"{ep.server} [{ep.launcher or 'external'}]"


def endpoint_warmup(settings: LoadSettings) -> LoadSettings:
    """The settings of the warm-up of an endpoint whose server an earlier endpoint warmed."""
    if settings.endpoint_warmup_seconds is None:
        return settings
    return replace(settings, server_warmup_seconds=settings.endpoint_warmup_seconds)


def paired_endpoints(chosen: Sequence[Endpoint], measured: dict[int, EndpointLoad], settings: LoadSettings, *,
                     payload: str, log_dir: Path, around: Around | None = None) -> list[PairedEndpoint]:
    """The endpoints as the paired rounds see them: job, record, server (and its processes), metrics scope."""
    return [PairedEndpoint(label=_label(ep), job=endpoint_job(ep, settings, payload=payload, twin=ep.model,
                                                              log_dir=log_dir),
                           result=measured[i], server=_server_key(ep),
                           server_pids=list(ep.server_pids),
                           around=(lambda ep=ep: around(ep)) if around is not None else contextlib.nullcontext)
            for i, ep in enumerate(chosen)]


def closed_paired(chosen: Sequence[Endpoint], measured: dict[int, EndpointLoad], settings: LoadSettings, *,
                  payload: str, log_dir: Path, around: Around | None = None,
                  say: Callable[[str], None] = print) -> tuple[list[list[str]], list[PairedRatio]]:
    """The closed loop of `chosen` (warmed, their records in `measured` by index) in paired rounds: each
    record gets its sweeps (one per round), saturation, order and summaries. Returns the rounds' orders and
    the per-round comparisons of every two endpoints of one model."""
    eps = paired_endpoints(chosen, measured, settings, payload=payload, log_dir=log_dir, around=around)
    orders = measure_paired(eps, settings, log_dir=log_dir, say=say, alive=_alive)
    for e in eps:
        e.result.order = [o.index(e.label) for o in orders if e.label in o]
        e.result.repeat_summaries = repeat_summaries([p for sw in e.result.sweeps for p in sw.points])
    return orders, paired_comparisons([(e.label, ep.model, e.result) for e, ep in zip(eps, chosen, strict=True)
                                       if e.result.sweeps])


def _visit_paired(ctx: Any, chosen: list[Endpoint], results: LoadTestResults, around: Around | None,
                  reference: ReferenceProbe, log_dir: Path, t0: float) -> None:
    """Every endpoint's warm-up, then the closed loop of all of them in paired rounds (`loadtests/paired.py`),
    then each endpoint's open-loop points at its own fractions of its saturation; the per-round comparisons."""
    settings: LoadSettings = ctx.config.profile.load
    run_dir = ctx.run_dir
    payload = str(run_dir.path)
    results.paired_rounds = settings.paired_rounds
    measured: dict[int, EndpointLoad] = {}

    def save_now() -> None:
        results.endpoints = [measured[i] for i in sorted(measured)]
        results.seconds = time.perf_counter() - t0
        _save(results, run_dir)

    warmed: set[str] = set()
    for i, ep in enumerate(chosen):  # every server warmed (excluded) before any window is measured
        server = _server_key(ep)
        warm = settings if server not in warmed else endpoint_warmup(settings)
        warmed.add(server)
        ctx.console.print(f"load: {_label(ep)}: warm-up (at most {warm.server_warmup_seconds:g} s)")
        measured[i] = measure_endpoint(ep, warm, payload=payload, twin=ep.model, log_dir=log_dir, modes=(),
                                       warm=True)
    save_now()
    _sample(ctx, reference, "the paired rounds")
    ctx.console.print(f"load: closed loop of {len(chosen)} endpoints in {settings.paired_rounds} paired rounds per "
                      "step")
    results.order, results.comparisons = closed_paired(chosen, measured, settings, payload=payload, log_dir=log_dir,
                                                       around=around, say=ctx.console.print)
    save_now()
    _sample(ctx, reference, "the paired open-loop rounds")
    ctx.console.print(f"load: open loop of {len(chosen)} endpoints in {settings.paired_rounds} paired rounds per "
                      "fraction of saturation")
    eps = paired_endpoints(chosen, measured, settings, payload=payload, log_dir=log_dir, around=around)
    measure_paired_open(eps, settings, log_dir=log_dir, say=ctx.console.print, alive=_alive)
    for e in eps:
        e.result.repeat_summaries = repeat_summaries([p for sw in e.result.sweeps for p in sw.points]
                                                     + e.result.open_points)
    results.comparisons = paired_comparisons([(e.label, ep.model, e.result) for e, ep in zip(eps, chosen, strict=True)
                                              if e.result.sweeps])
    save_now()
    for i in sorted(measured):
        ctx.console.print(f"  {_label(chosen[i])}: " + summary_line(measured[i]))


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
