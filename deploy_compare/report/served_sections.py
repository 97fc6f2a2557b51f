"""Blocks of the served-stack sections: the scorecard, the serving tax, native vs container, the saturation
table and the headroom sentence. `sections` registers them in reading order; each cell links to the
section holding its evidence."""
from __future__ import annotations

from deploy_compare.report import fmt
from deploy_compare.report.document import Block, Figure, Note, Para, Table
from deploy_compare.report.model import Headroom, ReportResults, ScoreRow, TaxBreakdown
from deploy_compare.report.served import BOTH_COMMAND, launcher_pairs, point_at, saturation_text, stop_text, warmup_text
from deploy_compare.report.tax import COMPONENTS
from loadtests.results import MachineReference


def _link(text: str, anchor: str) -> str:
    return text if text == fmt.NA else f"[{text}](#{anchor})"


def _stack(r) -> str:
    return f"{r.stack} {r.protocol}" + (f" ({r.launcher})" if r.launcher else "")


def _cold(r: ScoreRow) -> str:
    if r.ready_s is None:
        return fmt.NA
    return (f"ready {fmt.seconds(r.ready_s)}, load {fmt.seconds(r.model_load_s)}, "
            f"first request {fmt.ms(r.first_request_ms)}")


def scorecard(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    if not res.scorecard:
        return [] if res.missing_for("scorecard") else [Para("No served stack was load-tested in this run.")]
    rows = [[_stack(r), r.model, _link(fmt.size(r.artifact_bytes), "artifacts"), _link(fmt.ms(r.floor_p50_ms), "floor"),
             _link(fmt.ms(r.served_p50_ms), "latency"), _link(fmt.ms(r.tax_ms), "serving-tax"),
             _link(saturation_text(r.saturation), "curves"), _link(_cold(r), "serving"),
             _link(fmt.size(r.memory_bytes), "memory") + (f" ({r.memory_source})" if r.memory_bytes else "")]
            for r in res.scorecard]
    blocks: list[Block] = [
        Para("One row per served stack (server/format, protocol, twin, launcher); every cell is a stored figure of "
             "this run and links to the section with its evidence. *Serving tax* = served p50 at 1 user - "
             "in-process p50 of the same artifact; where it goes is broken down in [the serving tax](#serving-tax)."),
        Table(headers=["stack", "twin", "artifact size", "in-process p50", "served p50, 1 user", "serving tax",
                       "saturation", "cold start", "server memory"], rows=rows,
              footnotes=["Saturation: *saturates at* only when every sweep stopped on a throughput plateau or "
                         "the SLO; otherwise the highest valid throughput is a lower bound (stop reasons in "
                         "[latency vs throughput](#curves)).", *_conditions(res)])]
    if "scorecard" in figures:
        blocks.append(figures["scorecard"])
    return blocks


def _conditions(res: ReportResults) -> list[str]:
    """The machine's conditions under the served figures, as stored (both under [latency](#latency))."""
    out = []
    if res.cpu_idle is not None:
        out.append(f"Load measured with idle CPUs {'polling' if res.cpu_idle.held else 'as the kernel chose'} "
                   f"([latency](#latency)).")
    spread = res.reference.spread if res.reference else None
    if spread is not None:
        out.append(f"The machine's reference loop moved {spread:.0%} during the load stage "
                   "([latency](#latency)): differences between rows, or from another run, smaller than that "
                   "may be the machine's own.")
    return out


def _component_cells(t: TaxBreakdown, names: list[str]) -> list[str]:
    by_name = {c.name: c.ms for c in t.components}
    return [fmt.ms(by_name[n]) if n in by_name else fmt.NA for n in names]


def serving_tax(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    gaps = [f"{w.stack} {w.protocol} ({w.model}): {w.error}" for w in res.server_windows if w.error]
    if not res.tax:
        return ([] if res.missing_for("serving-tax") else [Para("No load point to break down.")]) + [
            Note(f"No server-side figure: {g}", "info") for g in gaps]
    present = {c.name for t in res.tax for c in t.components}
    names = [n for n in COMPONENTS if n in present]
    rows = [[_stack(t), t.model, t.point, fmt.ms(t.client_mean_ms), *_component_cells(t, names),
             fmt.ms(t.unaccounted_ms), fmt.ms(t.overlap_ms),
             f"{100 * t.accounted_ms / t.client_mean_ms:.0f}%" + ("" if t.adds_up else " (not within 10%)")]
            for t in res.tax]
    sources: dict[str, list[str]] = {}
    for c in (c for t in res.tax for c in t.components):
        if c.source not in sources.setdefault(c.name, []):
            sources[c.name].append(c.source)
    blocks: list[Block] = [Para(
        "Where a request's mean time goes, per served stack, at 1 user and at the point nearest 50% of saturation "
        "(never aggregated over a sweep): the server's own per-request accounting over exactly that point's "
        "measurement window (counters sampled every 0.5 s during the load, the samples inside the window "
        "differenced), beside the client's mean over the same window and the in-process floor. Means in ms per "
        "request; every component is >= 0, and the outside row is what remains of the client's mean.")]
    missing_windows = [p for p in res.load_points if p.window_unix is None]
    if missing_windows and res.load_points:
        blocks.append(Note(f"{len(missing_windows)} of {len(res.load_points)} load points carry no window bounds "
                           "(`window_start_unix`, `window_end_unix` in loadtest.json, written by the load stage): "
                           "their rows have no server-side figure. Rerun the serve stage with a load stage that "
                           "records them.", "missing"))
    if "serving_tax" in figures:
        blocks.append(figures["serving_tax"])
    rows_of: dict[str, list[str]] = {}
    for t in res.tax:
        for n in t.notes:
            rows_of.setdefault(n, []).append(f"{_stack(t)} {t.point}")
    notes = [f"{n[0].upper()}{n[1:]} ({'every row' if len(r) == len(res.tax) else '; '.join(r)})."
             for n, r in rows_of.items()]
    blocks.append(Table(headers=["stack", "twin", "point", "client mean", *names, "unaccounted", "overlap",
                                 "accounted"], rows=rows,
                        footnotes=["Columns: " + "; ".join(f"*{name}*: {' / '.join(v)}" for name, v in sources.items())
                                   + ".", *notes,
                                   *(f"No server-side figure: {g}" for g in gaps)]))
    return blocks


def _signed(render):
    return lambda v: ("+" if v >= 0 else "-") + render(abs(v))


def _interval(iv: dict[str, float] | None, render) -> str:
    """ " [lo, hi]" across repeats (95% interval of the median), or nothing for a single repeat."""
    return f" [{render(iv['ci_lo'])}, {render(iv['ci_hi'])}]" if iv and "ci_lo" in iv else ""


def _none(_row: ScoreRow) -> None:  # a single measurement: no interval
    return None


def _pair_rows(res: ReportResults, users: int = 1) -> list[list[str]]:
    """Per stack served both ways: figure, native, container, and the container tax (container - native),
    each launcher's interval across repeats beside its figure where the profile repeats points."""
    rows = []
    for native, docker in launcher_pairs(res):
        at = {r.launcher: point_at(res, r, users) for r in (native, docker)}

        def point_stat(stat: str, key: str):
            return (lambda r: getattr(at[r.launcher].latency, stat) if at[r.launcher] else None,
                    lambda r: at[r.launcher].intervals.get(key) if at[r.launcher] else None)

        parity = {p.launcher: "pass" if p.passed else "FAIL" for p in res.served_parity
                  if (p.stack, p.protocol, p.model) == (native.stack, native.protocol, native.model)}
        figures = [
            ("cold start: start -> ready (container: create -> ready)", lambda r: r.ready_s, _none, fmt.seconds,
             "serving"),
            ("cold start: model load", lambda r: r.model_load_s, _none, fmt.seconds, "serving"),
            ("cold start: first request", lambda r: r.first_request_ms, _none, fmt.ms, "serving"),
            (f"p50 at {fmt.users(users)}", *point_stat("p50", "p50_ms"), fmt.ms, "latency"),
            (f"p99 at {fmt.users(users)}", *point_stat("p99", "p99_ms"), fmt.ms, "latency"),
            ("saturation (or its lower bound)", lambda r: r.saturation.rps if r.saturation else None,
             lambda r: r.saturation.interval if r.saturation else None, fmt.rate, "curves"),
            ("server memory", lambda r: r.memory_bytes, _none, fmt.size, "memory")]
        name = f"{native.stack} {native.protocol} ({native.model})"
        rows.append([name, "served parity", parity.get("native", fmt.NA), parity.get("docker", fmt.NA), ""])
        for label, value, interval, render, anchor in figures:
            a, b = value(native), value(docker)
            if render is fmt.rate:  # saturation: the wording says whether it is a lower bound
                cells = [saturation_text(r.saturation) + _interval(interval(r), render) for r in (native, docker)]
            else:
                cells = [fmt.NA if v is None else render(v) + _interval(interval(r), render)
                         for v, r in ((a, native), (b, docker))]
            rows.append([name, label, *(_link(c, anchor) for c in cells),
                         _signed(render)(b - a) if a is not None and b is not None else fmt.NA])
    return rows


def containers(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    if not {"native", "docker"} <= set(res.launchers):
        used = ", ".join(res.launchers) or "none recorded"
        return [Para(f"This run served its stacks with one launcher ({used}), so there is no container tax to "
                     f"show. The command that serves each stack both natively and in a container and load-tests "
                     f"both: `{BOTH_COMMAND}`.")]
    rows = _pair_rows(res)
    if not rows:
        return [Para("Both launchers ran, but no stack was load-tested under both (see "
                     "[what did not run](#not-run)).")]
    return [Para("The same stacks served natively and from a container (same config, CPU pinning, token auth, "
                  "ports on 127.0.0.1), measured in one run. Container tax = container - native. Container "
                  "cold start runs from container create to ready; its memory is the container's cgroup "
                  "figure, the native one the peak RSS of the process tree."),
            Table(headers=["stack", "figure", "native", "container", "container tax"], rows=rows,
                  footnotes=["Intervals across repeats are in [latency percentiles](#latency) when the profile "
                             "repeats points; a single repeat gives none."])]


def saturation_table(res: ReportResults) -> Table:
    return Table(headers=["stack", "twin", "saturation", "at users", "stop reason", "across repeats",
                          "server warm-up before it (excluded)"],
                 rows=[[_stack(s), s.model, saturation_text(s), str(s.users) if s.users else fmt.NA, stop_text(s),
                        (f"{fmt.rate(s.interval.get('median'))} [{fmt.rate(s.interval.get('ci_lo'))}, "
                         f"{fmt.rate(s.interval.get('ci_hi'))}]") if s.interval else "1 repeat",
                        warmup_text(s.warmup) or fmt.NA]
                       for s in res.saturations],
                 footnotes=["Server warm-up: load at a fixed number of users in short windows until the last "
                            "few agree on throughput (`server_warmup_*` in the recorded settings) and, where the "
                            "server has JIT compiler threads (TorchServe's JVM), those used at most the limit of "
                            "a core in each; its requests are in no figure."])


def reference_text(ref: MachineReference | None) -> str:
    """The machine's reference over the load stage, as stored (loadtests/reference.py)."""
    if ref is None:
        return "Machine reference: not recorded (a load stage before loadtests/reference.py)."
    parts = [f"before {s.before}: {fmt.rate(s.rps)} (p50 {fmt.num(s.p50_ms)} ms)" for s in ref.samples]
    text = f"Machine reference ({ref.loop}): " + ("; ".join(parts) or "no sample") + "."
    if ref.spread is not None:
        text += (f" It moved **{ref.spread:.0%}** (max/min) during this stage: the machine's own speed for one "
                 "fixed loop, not any server's. No figure is corrected by it; two runs of the same server, or "
                 "two endpoints, that differ by less than this may differ by the machine alone.")
    if ref.failure:
        text += f" Sampling stopped: {ref.failure}."
    return text


def headroom_text(h: Headroom) -> str:
    what = f"{h.protocol} " if h.protocol else ""
    text = (f"Load generator headroom, {what}null endpoint: {fmt.rate(h.throughput)}"
            + (f" (p50 {fmt.ms(h.p50_ms)})" if h.p50_ms is not None else "") + f" on CPUs {h.cpus}")
    if h.per_core is not None:  # older results: their stored ratio divides the per-core rate
        text += f", {fmt.rate(h.per_core)} per core of generator CPU"
    if h.ratio is not None:
        text += f"; **{h.ratio:.1f}x** the fastest endpoint"
        if h.fastest_server is not None:
            text += f" ({fmt.rate(h.fastest_server)})"
    if h.note:
        text += f"; {h.note}"
    return text + "."
