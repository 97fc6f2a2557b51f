"""Blocks of the served-stack sections: the scorecard, the serving tax, native vs container, the saturation
table and the headroom sentence. `sections` registers them in reading order; each cell links to the
section holding its evidence."""
from __future__ import annotations

from deploy_compare.app.report import fmt
from deploy_compare.app.report.claims import (
    SERVER_NAMES,
    difference_text,
    endpoint_name,
    paired,
    paired_at_top,
    subtraction_conditions,
)
from deploy_compare.app.report.document import Block, Figure, Note, Para, Table
from deploy_compare.app.report.model import Headroom, ReportResults, ScoreRow, TaxBreakdown
from deploy_compare.app.report.served import (
    BOTH_COMMAND,
    launcher_pairs,
    point_at,
    saturation_text,
    stop_text,
    warmup_text,
)
from deploy_compare.app.report.tax import COMPONENTS
from deploy_compare.loadtests.results import MachineReference


def _link(text: str, anchor: str) -> str:
    return text if text == fmt.NA else f"[{text}](#{anchor})"


def _stack(r) -> str:
    return f"{r.stack} {r.protocol}" + (f" ({r.launcher})" if r.launcher else "")


COLUMNS = {"tensorflow": "TensorFlow/Keras", "pytorch": "PyTorch"}
# how each server runs a model: its own process running the artifact's own runtime
MODEL_PROCESS = {"torchserve": "worker", "rayserve": "replica (a Ray actor process)"}
HELD_FIXED = {"torchserve": "same config, pinning, token and limits"}  # others: no token


def column_of(r: ScoreRow) -> str:
    """"TensorFlow/Keras, served by TorchServe": the artifact's column and the server that served it."""
    server = SERVER_NAMES.get(r.stack.partition("/")[0], r.stack.partition("/")[0])
    return f"{COLUMNS.get(r.framework, r.framework or fmt.NA)}, served by {server}"


def _cold(r: ScoreRow) -> str:
    if r.ready_s is None:
        return fmt.NA
    return (f"ready {fmt.seconds(r.ready_s)}, load {fmt.seconds(r.model_load_s)}, "
            f"first request {fmt.ms(r.first_request_ms)}")


def scorecard(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    if not res.scorecard:
        return [] if res.missing_for("scorecard") else [Para("No served stack was load-tested in this run.")]
    rows = [[_stack(r), column_of(r), r.model, _link(fmt.size(r.artifact_bytes), "artifacts"),
             _link(fmt.ms(r.floor_p50_ms), "floor"), _link(fmt.ms(r.served_p50_ms), "latency"),
             _link(fmt.ms(r.tax_ms), "serving-tax"), _link(saturation_text(r.saturation), "curves"),
             _link(_cold(r), "serving"), _link(fmt.size(r.worker_bytes), "memory"),
             _link(fmt.size(r.memory_bytes), "memory") + (f" ({r.memory_source})" if r.memory_bytes else "")]
            for r in res.scorecard]
    blocks: list[Block] = [
        Para("One row per served stack (server/format, protocol, twin, launcher); every cell is a stored figure of "
             "this run and links to the section with its evidence. *Artifact of* names the column the artifact "
             "belongs to and the server that served it: the TensorFlow/Keras rows are served by TorchServe (the "
             "same server as the PyTorch rows, a worker running the artifact's own runtime), not by TF Serving. "
             "*Serving tax* = served p50 at 1 user - in-process p50 of the same artifact; where it goes is broken "
             "down in [the serving tax](#serving-tax). *Worker memory* is the peak RSS of the model's own worker "
             "process, *server memory* that of the whole server."),
        Table(headers=["stack", "artifact of", "twin", "artifact size", "in-process p50", "served p50, 1 user",
                       "serving tax", "saturation", "cold start", "worker memory", "server memory"], rows=rows,
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
    out += [subtraction_conditions(res)]
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
        # the load figures' tax is the paired ratio container / native, stated only where its 99% interval
        # excludes no difference; figures measured once each (cold start, memory) are a plain difference
        nd, dk = endpoint_name(native), endpoint_name(docker)
        paired_tax = {f"p50 at {fmt.users(users)}": paired(res, dk, nd, "p50_ms", f"{users} users"),
                      "saturation (or its lower bound)": paired_at_top(res, dk, nd, "throughput_rps")}
        for label, value, interval, render, anchor in figures:
            a, b = value(native), value(docker)
            if render is fmt.rate:  # saturation: the wording says whether it is a lower bound
                cells = [saturation_text(r.saturation) + _interval(interval(r), render) for r in (native, docker)]
            else:
                cells = [fmt.NA if v is None else render(v) + _interval(interval(r), render)
                         for v, r in ((a, native), (b, docker))]
            if res.paired_rounds and anchor in ("latency", "curves"):
                tax = difference_text(paired_tax.get(label))
            else:
                tax = _signed(render)(b - a) if a is not None and b is not None else fmt.NA
                if anchor in ("latency", "curves") and tax != fmt.NA:
                    tax += " (measured one after another: no interval, not a finding)"
            rows.append([name, label, *(_link(c, anchor) for c in cells), tax])
    return rows


def paired_section(res: ReportResults) -> list[Block]:
    """Every two endpoints of one model measured side by side: the per-round ratio, its intervals, and what
    the 99% interval lets the report say."""
    if not res.comparisons:
        return [Para("The endpoints of this run were measured one after another (no paired rounds), so it states "
                     "no ranking between them: on a machine that drifts by tens of percent within minutes, a "
                     "difference between two sequential figures is partly a difference between two minutes.")]
    rows = [[c.a, c.b, f"{c.metric.split('_')[0]} at {c.load}", f"{c.ratio:.3f}",
             f"[{fmt.num(c.ci95_lo)}, {fmt.num(c.ci95_hi)}]" if c.ci95_lo is not None else "unbounded",
             f"[{fmt.num(c.ci99_lo)}, {fmt.num(c.ci99_hi)}]" if c.ci99_lo is not None else "unbounded",
             f"{c.sign_p:.3g}", _verdict(c)] for c in res.comparisons]
    return [Para(f"Endpoints of one model measured side by side: at every closed-loop step, one short window of every "
                 f"endpoint still sweeping, in a balanced rotating order (ABBA BAAB ...), for {res.paired_rounds} "
                 "rounds on the same warm servers; servers not being measured idle during a window. A comparison "
                 "is the ratio A / B of the two windows of each round; shown: its median over the rounds and "
                 "exact sign-test intervals of that median (order statistics of the per-round ratios). A ranking "
                 "is stated only when the 99% interval excludes 1 (a report states many comparisons); otherwise "
                 "the interval says how large a difference the rounds leave open."),
            Table(headers=["A", "B", "figure", "A / B (median of rounds)", "95% interval", "99% interval",
                           "sign test p", "what it supports (99%)"], rows=rows,
                  footnotes=["p50: lower is better; throughput: higher is better. With n rounds the smallest "
                             "two-sided sign-test p is 2^(1-n): 8 rounds can reach p < 0.01 only when every round "
                             "agrees."])]


def _verdict(c) -> str:
    win = c.winner()
    if win is None:
        w = c.within()
        return "no difference found" + (f" (within ±{w:.0%})" if w is not None else " (too few rounds)")
    better = "lower" if not c.higher_is_better else "higher"
    r = c.ratio if win == c.a else 1 / c.ratio
    return f"**{win}** {better} by {abs(r - 1):.0%}"


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


def _by_protocol(rows: list[ScoreRow], value, render) -> str:
    """`REST x / gRPC y` over a stack's rows (one per protocol)."""
    parts = [f"{r.protocol} {render(value(r))}" for r in sorted(rows, key=lambda r: r.protocol != "rest")]
    return " / ".join(parts) or fmt.NA


def conditions_text(res: ReportResults) -> list[str]:
    """How the in-process and the served figures were measured, and how the conditions differ (rule 16)."""
    floor_threads = sorted({r.threads for r in res.floor if r.batch == 1 and r.latency is not None}) or [1]
    idle = ("idle CPUs polling" if res.cpu_idle.held else "idle CPUs as the kernel chose") if res.cpu_idle else \
        "idle policy not recorded"
    one = [p for p in res.load_points if p.mode == "closed" and p.users == 1]
    cores = sorted({c for p in one for c in p.server_cpus})
    differ = ["idle policy (in-process: the kernel's choice, the floor holds none; served: "
              f"{idle})"] if res.cpu_idle is not None and res.cpu_idle.held else []
    differ.append("payload (in-process: a numpy array handed to the runtime; served: the same batch-1 sample as JSON "
                  "over REST or as bytes over gRPC, plus the client)")
    return [f"In-process p50: the [floor](#floor), batch 1, {min(floor_threads)} thread (a process pinned to one core "
            "at 1 thread), the runtime called directly, idle CPUs as the kernel chose. Served p50: the "
            f"[closed loop at 1 user](#latency), one worker per model with 1 intra-op thread, the server pinned to "
            f"core(s) {cores or fmt.NA}, {idle}. Same runtime, same thread count and a pinned core on both sides; "
            "they differ in " + "; and ".join(differ) + ". *Served - in-process* is therefore the server and "
            "protocol's share plus whatever those differences add, not the server's alone.",
            "No ranking: not measured side by side. The formats were load-tested one after another on the shared "
            "machine, not interleaved on the same warm server, so no interval supports a 'faster' between rows "
            "(conventions rule 15)."]


def runtimes(res: ReportResults) -> list[Block]:
    """The server held fixed, the runtime varied: per server, per served format its in-process floor beside what
    the server made of it (one table per server: TorchServe, and Ray Serve where it ran)."""
    groups: dict[str, dict[tuple[str, str, str], list[ScoreRow]]] = {}
    for r in res.scorecard:
        groups.setdefault(r.stack.partition("/")[0], {}).setdefault((r.stack, r.model, r.launcher), []).append(r)
    if not groups:
        return [Para("No served stack was load-tested in this run.")]
    blocks: list[Block] = []
    for server, stacks in groups.items():
        blocks += _runtimes_of(res, server, stacks)
    return blocks


def _runtimes_of(res: ReportResults, server: str, groups: dict[tuple[str, str, str], list[ScoreRow]]) -> list[Block]:
    rows = []
    for (stack, model, launcher), rs in groups.items():
        first = rs[0]
        rows.append([stack + (f" ({launcher})" if launcher and len(res.launchers) > 1 else ""), column_of(first),
                     first.runtime or fmt.NA, model, _link(fmt.ms(first.floor_p50_ms), "floor"),
                     _by_protocol(rs, lambda r: r.served_p50_ms, fmt.ms),
                     _by_protocol(rs, lambda r: r.tax_ms, fmt.ms),
                     _by_protocol(rs, lambda r: r.saturation, saturation_text),
                     _link(fmt.size(first.worker_bytes), "memory")])
    name, process = SERVER_NAMES.get(server, server), MODEL_PROCESS.get(server, "worker")
    held = HELD_FIXED.get(server, "same config, pinning and limits")
    return [Para(f"The same server ({name}, {held}) serving each format, each "
                 f"model in its own {process} running the artifact's own runtime: the in-process p50 of that runtime "
                 "beside the served p50 at 1 user and the saturation, per protocol. It separates *which server* "
                 "from *which runtime*: where served - in-process is nearly the whole served figure, the number is "
                 "the server's, not the runtime's."),
            Table(headers=["stack", "artifact of", f"runtime in the {process.split()[0]}", "twin", "in-process p50",
                           "served p50, 1 user", "served - in-process", "saturation", f"{process.split()[0]} memory"],
                  rows=rows, footnotes=conditions_text(res))]
