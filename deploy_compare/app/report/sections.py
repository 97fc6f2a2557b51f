"""`ReportResults` -> `Document`: one builder per section, registered in reading order.

Builders only read the aggregate (and the list of plots drawn from it). A section whose results file
is missing opens with a note saying which file, why, and the command that produces it.
"""
from __future__ import annotations

from collections.abc import Callable

from deploy_compare.app.report import fmt, served_sections
from deploy_compare.app.report.claims import UNMEASURABLE, graph_verdict
from deploy_compare.app.report.document import Block, Bullets, Document, Figure, Note, Para, Section, Table
from deploy_compare.app.report.model import FRAMEWORKS, FloorRow, LatencyStats, LoadPoint, ReportResults
from deploy_compare.core.registry import Registry
from deploy_compare.serving import maintenance

LATENCY_COLUMNS = ("p50", "p90", "p95", "p99", "p99.9")  # the percentiles every latency table shows

Builder = Callable[[ReportResults, dict[str, Figure]], list[Block]]
SECTIONS: Registry[tuple[str, Builder]] = Registry("report section")


def section(anchor: str, title: str) -> Callable[[Builder], Builder]:
    def decorator(build: Builder) -> Builder:
        SECTIONS.register(anchor)((title, build))
        return build

    return decorator


def build_document(res: ReportResults, figures: dict[str, Figure]) -> Document:
    profile = res.settings.profile if res.settings else "unknown"
    subtitle = f"Run `{res.run_id}`, profile **{profile}**"
    if res.environment:
        subtitle += f", git `{res.environment.git_commit[:12]}`" + (" (dirty)" if res.environment.git_dirty else "")
    model = res.settings.model if res.settings else ""
    title = f"deploy-compare: {model}, deployed" if model else "deploy-compare: TensorFlow/Keras vs PyTorch deployment"
    doc = Document(title=title, subtitle=subtitle)
    for anchor, (title, build) in SECTIONS.items():
        blocks: list[Block] = [
            Note(m.note, "missing")
            for m in res.missing_for(anchor)]
        blocks += build(res, figures)
        doc.sections.append(Section(anchor=anchor, title=title, blocks=blocks))
    return doc


def _quick_note(res: ReportResults) -> list[Block]:
    if not res.single_repeat or res.settings is None:
        return []
    note = res.settings.profile_note.removeprefix(f"{res.settings.profile} profile: ")
    stats = [f.latency for f in res.floor if f.latency] + [p.latency for p in res.load_points if p.latency.n]
    def unbacked_in(name: str) -> list[LatencyStats]:
        return [s for s in stats if name not in s.backed and (name != "p95" or s.p95 is not None)]

    unbacked = [f"{name} in {len(unbacked_in(name))} of {len(stats)}" for name in LATENCY_COLUMNS[1:]
                if unbacked_in(name)]
    counted = (f" In this run the sample counts cannot back {', '.join(unbacked)} latency rows (starred)."
               if unbacked else "")
    repeats = ("Single repeats carry no interval across repeats." if not res.paired_rounds else
               f"Load points are {res.paired_rounds} paired rounds (their intervals are across rounds); the floor's "
               "single repeat carries no interval across repeats.")
    return [Note(f"**{res.settings.profile} profile** — {note}. {repeats}{counted}", "warn")]


def _empty(res: ReportResults, anchor: str, text: str) -> list[Block]:
    """A section without rows: say so, unless its missing-file note already says why."""
    return [] if res.missing_for(anchor) else [Para(text)]


def _lead(text: str, figures: dict[str, Figure], plot: str) -> list[Block]:
    """A section's opening paragraph, then its plot when one was drawn."""
    return [Para(text)] + ([figures[plot]] if plot in figures else [])


def _latency_cells(stats: LatencyStats | None) -> list[str]:
    return [fmt.percentile(stats, name) for name in LATENCY_COLUMNS]


# ------------------------------------------------------------------------------------------- sections

@section("scorecard", "Scorecard")
def scorecard(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    return _quick_note(res) + served_sections.scorecard(res, figures)


@section("comparison", "The comparison table")
def comparison(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    rows = []
    for row in res.comparison:
        cells = [f"**{row.feature}**"]
        for fw in FRAMEWORKS:
            cell = row.cells[fw]
            text = f"claimed: {cell.claim}"
            if cell.status == "measured":
                text += "\n**this run:**" + "".join(f"\n• {line}" for line in cell.measured)
                text += f"\n[figures](#{cell.link})"
                if cell.gaps:
                    text += "; lacking " + ", ".join(f"`{gap}`" for gap in cell.gaps) + " ([why](#not-run))"
            elif cell.status == "missing":
                text += ("\nnot measured in this run: lacking " + ", ".join(f"`{gap}`" for gap in cell.gaps)
                         + " ([why](#not-run))")
            else:
                text += "\nnot measured"
            cells.append(text)
        rows.append(cells)
    reasons = "; ".join(f"{row}: {why}" for row, why in UNMEASURABLE.items())
    return [
        Para("The seed study compares TensorFlow, Keras, Theano and PyTorch in six rows. Its claims are shown as "
             "**claimed** (our wording). The *Computational graph* and *Deployment* rows are backed by this run's "
             "figures, each linking to its section; the other rows no run can measure, so they stay claims."),
        Table(headers=["Feature", *FRAMEWORKS], rows=rows, footnotes=[f"Not measurable by a run: {reasons}."]),
        Para(f"Each serving stack's maintenance status ({maintenance.LABEL}; the same table is in "
             "docs/servers.md). Cited, not measured: no figure of this run depends on it, and the run's figures "
             "support no recommendation of a server by its status."),
        Table(headers=maintenance.HEADERS, rows=maintenance.rows(links=False)),
    ]


@section("environment", "Environment and fairness settings")
def environment(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    blocks: list[Block] = []
    env, s = res.environment, res.settings
    rows: list[list[str]] = []
    if s:
        note = s.profile_note.removeprefix(f"{s.profile} profile: ")
        rows += [["profile", f"{s.profile}: {note}" if note else s.profile],
                 ["repeats", f"floor {s.repeats_floor}, load {s.repeats_load} per point"],
                 ["in-process threads", ", ".join(map(str, s.floor_threads))],
                 ["in-process batch sizes", ", ".join(map(str, s.floor_batches))],
                 ["floor window", s.floor_window], ["load window", s.load_window]]
        rows += [[k, v] for k, v in s.serve.items()]
    if env:
        rows += [["CPU", f"{env.cpu_model} ({env.cpu_count} logical CPUs, affinity {env.cpu_affinity})"],
                 ["memory", fmt.size(env.memory_bytes)], ["python", env.python], ["platform", env.platform],
                 ["java", env.java or fmt.NA],
                 ["git commit", f"`{env.git_commit}`" + (" (uncommitted changes)" if env.git_dirty else "")],
                 ["thread variables", ", ".join(f"{k}={v}" for k, v in env.thread_env.items()) or "none set"]]
    if rows:
        blocks.append(Table(headers=["setting", "value"], rows=rows))
    if env:
        blocks.append(Table(headers=["package", "version"], rows=[[k, v] for k, v in env.packages.items()]))
    if res.stages:
        total = sum(t.seconds for t in res.stages)
        blocks.append(Para("Wall time per pipeline stage (as recorded in `stages.json`; the report stage itself "
                           "is still running when this is written):"))
        blocks.append(Table(
            headers=["stage", "wall time", "share", "status"],
            rows=[[t.stage, fmt.seconds(t.seconds), fmt.pct(t.seconds / total if total else None),
                   "ok" if t.ok else f"failed: {t.error}"] for t in res.stages]
            + [["**total**", fmt.seconds(total), "", ""]]))
    return blocks


@section("models", "Model zoo")
def models(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    if not res.models:
        return _empty(res, "models", "No trained twins recorded.")
    return [
        Para("Each twin is defined once per framework with the same architecture and trained with that framework's "
             "own API; the Keras weights are then transplanted into the PyTorch twin, so every export computes "
             "the same function."),
        Table(headers=["twin", "dataset", "framework", "parameters", "held-out accuracy", "epochs", "train time",
                       "note"],
              rows=[[m.twin, m.dataset, m.framework, f"{m.params:,}", fmt.pct(m.accuracy),
                     fmt.num(m.epochs), fmt.seconds(m.train_seconds), m.note] for m in res.models])]


@section("artifacts", "Artifacts and parity")
def artifacts(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    if not res.artifacts:
        return _empty(res, "artifacts", "No artifacts recorded.")
    rows = [[a.twin, a.format, a.variant, f"{a.framework} via {a.converter}" if a.converter else a.framework,
             fmt.size(a.bytes), fmt.seconds(a.export_seconds)
             + (f" (compile {fmt.seconds(a.compile_seconds)})" if a.compile_seconds is not None else ""),
             fmt.sci(a.max_abs_error), fmt.sci(a.max_rel_error), fmt.pct(a.top1_agreement), fmt.pct(a.accuracy),
             f"{a.parity}: {a.parity_note}" if a.parity_note else a.parity] for a in res.artifacts]
    blocks: list[Block] = [
        Para("Every artifact answered the fixed held-out batch of its twin before any timing; fp32 artifacts must "
             "reach max abs error <= 1e-4 against the Keras reference and 100% top-1 agreement, quantized "
             "variants report their figures."),
        Table(headers=["twin", "format", "variant", "from", "size", "export time", "max abs err", "max rel err",
                       "top-1 agreement", "accuracy", "parity"], rows=rows,
              invalid_rows={i for i, a in enumerate(res.artifacts) if a.parity == "fail"})]
    if "artifact_sizes" in figures:
        blocks.append(figures["artifact_sizes"])
    return blocks


# exporter -> (from, to): every path from one framework's model to another framework's (or a neutral) format
CROSS_PATHS: dict[str, tuple[str, str]] = {
    "onnx-torch": ("PyTorch", "ONNX"),
    "onnx-tf": ("TensorFlow (Keras)", "ONNX"),
    "litert-torch": ("PyTorch", "TFLite"),
    "onnx2tf-savedmodel": ("PyTorch → ONNX", "TF SavedModel"),
    "onnx2tf-tflite": ("PyTorch → ONNX", "TFLite"),
}


def _cross_row(res: ReportResults, exporter: str, twin: str) -> list[str] | None:
    src, dst = CROSS_PATHS[exporter]
    art = next((a for a in res.artifacts if a.exporter == exporter and a.twin == twin and a.variant == "fp32"), None)
    if art is None:
        reason = next((n.reason for n in res.not_run if n.what == f"{twin}/{exporter}"), None)
        return None if reason is None else [f"{src} → {dst}", exporter, twin, f"not run: {reason}", fmt.NA, fmt.NA,
                                            fmt.NA]
    pts = [f for f in res.floor if f.artifact == art.key and f.batch == 1 and f.latency is not None and not f.error]
    p50 = (f"{fmt.ms(min(pts, key=lambda f: f.threads).latency.p50)} "
           f"({min(f.threads for f in pts)} thread)") if pts else fmt.NA
    parity = f"{art.parity}: {art.parity_note}" if art.parity_note else art.parity
    return [f"{src} → {dst}", art.converter or exporter, twin, "exported", parity, fmt.sci(art.max_abs_error), p50]


@section("cross-framework", "Cross-framework paths")
def cross_framework(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    twins = list(dict.fromkeys(a.twin for a in res.artifacts))
    rows = [row for exporter in CROSS_PATHS for twin in twins if (row := _cross_row(res, exporter, twin))]
    if not rows:
        return _empty(res, "artifacts", "No cross-framework path was tried in this run.")
    return [Para("A model of one framework run in another framework's format (or in ONNX): which paths this run "
                 "took, whether the result computes the reference function (the same parity gate as every artifact, "
                 "fp32) and its in-process batch-1 p50 (the [floor](#floor)). The converters whose dependencies "
                 "conflict with the project's lock (litert-torch, onnx2tf) run in venvs of their own."),
            Table(headers=["path", "converter", "twin", "status", "parity", "max abs err", "in-process p50"],
                  rows=rows, invalid_rows={i for i, r in enumerate(rows) if r[4].startswith("fail")})]


def _spread(f: FloorRow) -> str:
    if f.batch != 1 or f.p50_median_ms is None:
        return fmt.NA
    ci = f" [{fmt.num(f.p50_ci_ms[0])}, {fmt.num(f.p50_ci_ms[1])}]" if f.p50_ci_ms else ""
    cv = f", CV {f.p50_cv:.1%}" if f.p50_cv is not None else ""
    return f"{fmt.num(f.p50_median_ms)}{ci} ({f.repeats}x{cv})"


FLOOR_CV_LIMIT = 0.05  # repeats of a batch-1 p50 further apart than this are named under the floor table


def _disagreeing_repeats(firsts: list[FloorRow]) -> list[str]:
    bad = [f for f in firsts if f.p50_cv is not None and f.p50_cv > FLOOR_CV_LIMIT]
    if not bad:
        return []
    return [f"Repeats disagree (batch-1 p50 CV above {FLOOR_CV_LIMIT:.0%}): " + "; ".join(
        f"{f.twin} {f.label} CV {f.p50_cv:.1%}" for f in bad) + ". The machine's speed moved during the floor "
        "stage: the median is shown and the interval says how far; compare these rows with care, or rerun."]


@section("floor", "In-process floor")
def floor(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    blocks: list[Block] = []
    if res.floor:
        blocks.append(Para(
            "Each runtime runs its artifact (or the trained twin, for eager and compiled modes) inside one "
            "process, with no network: the floor under any server's latency. Latency percentiles in ms per "
            "batch-1 call; throughput in samples/s per batch size (b1, b32, ...); p50 across repeats as median "
            "[95% interval of the mean]."))
        points: dict[tuple[str, str, str, int], list[FloorRow]] = {}
        for f in res.floor:
            points.setdefault((f.twin, f.label, f.framework, f.threads), []).append(f)
        firsts = [min(rows, key=lambda f: f.batch) for rows in points.values()]
        blocks.append(Table(
            headers=["twin", "runtime", "from", "threads", "load", "first call", *LATENCY_COLUMNS, "n",
                     "throughput", "p50 across repeats", "peak RSS"],
            rows=[[f.twin, f.label, f.framework, str(f.threads), fmt.seconds(f.load_seconds),
                   fmt.seconds(f.first_seconds), *_latency_cells(f.latency),
                   str(f.latency.n) if f.latency else fmt.NA,
                   ", ".join(f"b{r.batch} {fmt.rate(r.throughput)}" for r in rows), _spread(f),
                   fmt.size(f.peak_rss_bytes) + (" (shared process)" if f.shared_process else "")]
                  for f, rows in zip(firsts, points.values())],
            invalid_rows={i for i, f in enumerate(firsts) if f.error},
            footnotes=[fmt.UNBACKED_NOTE,
                       "Peak RSS marked *shared process* is the process's peak after the points measured before it "
                       "in the same process (quick profile grouping), not this runtime's alone.",
                       *[f"{f.twin} {f.label} ({f.threads} thread): failed: {f.error}" for f in res.floor
                         if f.error and f.batch == 1], *_disagreeing_repeats(firsts)]))
        if "floor" in figures:
            blocks.append(figures["floor"])
    elif not res.missing_for("floor"):
        blocks.append(Para("No in-process measurements recorded."))
    if res.harness_overhead:
        blocks.append(Para(
            "Harness overhead: the `null` runtime returns a constant and is measured the same way, "
            f"{fmt.span([h.latency.p50 for h in res.harness_overhead if h.latency], 'ms')} p50 per call "
            f"(batches {', '.join(sorted({str(h.batch) for h in res.harness_overhead}))}, every twin)."))
    if res.graph_ratios:
        blocks.append(Para("Eager vs graph execution (the *Computational graph* row): latency ratio = eager p50 / "
                           "graph p50 at batch 1, throughput ratio = graph / eager samples/s at the larger batch; "
                           "above 1 the graph is faster."))
        blocks.append(Table(headers=["framework", "twin", "threads", "eager", "graph", "eager p50", "graph p50",
                                     "latency ratio", "paired rounds (99%)", "throughput ratio"],
                            rows=[[g.framework, g.twin, str(g.threads), g.eager, g.graph, fmt.ms(g.eager_p50_ms),
                                   fmt.ms(g.graph_p50_ms), f"{g.latency_ratio:.2f}x", graph_verdict(g),
                                   f"{g.throughput_ratio:.2f}x at batch {g.batch}" if g.throughput_ratio else fmt.NA]
                                  for g in res.graph_ratios],
                            footnotes=["Paired rounds: eager and graph batch-1 windows alternating in one process "
                                       "(balanced order); the ranking is stated only where the 99% sign-test "
                                       "interval of the per-round ratio excludes 1."]))
    t = res.theano
    if t is not None:
        text = (f"**Theano row.** Theano itself: {t.outcome} ([details](#not-run)); its maintained successor "
                f"{t.successor} stands in. Theano has no export format and no server, so its deployment cells are "
                "*none*. ")
        if t.measured:
            text += "Evidence of the static-graph cost: " + "; ".join(
                f"the `{twin}` twin as a {t.successor} graph compiles in {fmt.seconds(t.compile_seconds.get(twin))}, "
                f"then runs at {fmt.ms(p50)} p50 per batch-1 call" for twin, p50 in t.p50_ms.items()) + "."
        else:
            text += f"{t.successor} was not measured in this run (see [what did not run](#not-run))."
        blocks.append(Para(text))
    return blocks


@section("serving", "Serving: cold start and served parity")
def serving(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    blocks: list[Block] = []
    if res.cold_start:
        blocks.append(Para("Cold start, per server and model: process start to ready, model load (from the "
                           "server's own metrics or log), first request, then the sequential batch-1 p50 once warm."))
        blocks.append(Table(headers=["server", "stack", "model", "start -> ready", "model load", "first request",
                                     "sequential p50", "load time source"],
                            rows=[[c.server + (f" ({c.launcher})" if c.launcher else ""), c.stack, c.model,
                                   fmt.seconds(c.start_to_ready_s) + (f" from {c.started_by}" if c.started_by else ""),
                                   fmt.seconds(c.model_load_s), fmt.ms(c.first_request_ms), fmt.ms(c.steady_p50_ms),
                                   c.source] for c in res.cold_start]))
        if "cold_start" in figures:
            blocks.append(figures["cold_start"])
    if res.served_parity:
        blocks.append(Para("Served parity: each endpoint answered the held-out batch before it was timed."))
        blocks.append(Table(headers=["stack", "protocol", "model", "max abs err", "top-1 agreement", "parity"],
                            rows=[[p.stack, p.protocol, p.model, fmt.sci(p.max_abs_error), fmt.pct(p.top1_agreement),
                                   ("pass" if p.passed else "FAIL (not timed)") if p.gated
                                   else "reported (quantized variant, not gated)"] for p in res.served_parity],
                            invalid_rows={i for i, p in enumerate(res.served_parity) if not p.passed}))
    servers_not_run = [n for n in res.not_run if n.source == "serving.json"]
    if servers_not_run:
        blocks.append(Bullets([f"**{n.what}**: not run here — {n.reason} (enable: `{n.enable_command}`)"
                               for n in servers_not_run]))
    if not blocks and not res.missing_for("serving"):
        blocks.append(Para("No server results recorded."))
    return blocks


def _point_label(p: LoadPoint) -> str:
    return fmt.users(p.users or 0) if p.mode == "closed" else f"{fmt.num(p.target_rate)} req/s offered"


def _across_repeats(p: LoadPoint) -> str:
    if p.repeats < 2 or not p.intervals:
        return f"{p.repeats} repeat" + ("s" if p.repeats != 1 else "")
    parts = []
    for metric, label in (("throughput_rps", "req/s"), ("p99_ms", "p99 ms")):
        iv = p.intervals.get(metric)
        if iv:
            lo, hi = fmt.num(iv.get("ci_lo")), fmt.num(iv.get("ci_hi"))
            parts.append(f"{label} {fmt.num(iv.get('median'))} [{lo}, {hi}]")
    return f"{p.repeats} repeats: " + "; ".join(parts)


def _invalid_note(points: list[LoadPoint]) -> list[str]:
    bad = [p for p in points if not p.valid]
    noted = [p for p in points if p.valid and p.warnings]
    out = []
    if bad:
        out.append("Invalid points (shown, never used as results): " + "; ".join(
            f"{p.stack} {p.protocol} {_point_label(p)}: {', '.join(p.invalid_reasons)}" for p in bad))
    if noted:  # one line per caveat and endpoint, with the points it concerns
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for p in noted:
            for w in p.warnings:
                grouped.setdefault((p.stack, p.protocol, w), []).append(_point_label(p))
        out.append("Caveats (the points stand): " + "; ".join(
            f"{stack} {protocol} {', '.join(labels)}: {w}" for (stack, protocol, w), labels in grouped.items()))
    return out


@section("latency", "Latency percentiles per stack and protocol")
def latency(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    pts = res.load_points
    if not pts:
        return _empty(res, "latency", "No load points recorded.")
    blocks: list[Block] = [*_quick_note(res)]
    rows = [[f"{p.stack} {p.protocol}" + (f" ({p.launcher})" if len(res.launchers) > 1 else ""), p.model, p.mode,
             _point_label(p), fmt.rate(p.throughput), *_latency_cells(p.latency), str(p.latency.n),
             fmt.num(p.harness_p50_ms), fmt.pct(p.error_rate), fmt.pct(p.generator_cpu), _across_repeats(p)]
            for p in pts]
    blocks.append(Table(
        headers=["stack", "model", "loop", "load", "throughput", *[f"{c} ms" for c in LATENCY_COLUMNS], "n",
                 "generator p50 ms (null endpoint)", "errors", "generator CPU", "across repeats: median [95% CI]"],
        rows=rows, invalid_rows={i for i, p in enumerate(pts) if not p.valid},
        footnotes=[fmt.UNBACKED_NOTE, "Open-loop latency is measured from the scheduled send time "
                   "(coordinated-omission corrected).", *_invalid_note(pts)]))
    placement = sorted({(tuple(p.server_cpus), tuple(p.generator_cpus)) for p in pts})
    if placement:
        blocks.append(Para("CPU placement: " + "; ".join(
            f"server on CPUs {list(s) or 'any'}, load generator on CPUs {list(g) or 'any'}" for s, g in placement)
            + "."))
    blocks.append(Para((res.cpu_idle.summary() if res.cpu_idle else "CPU idle policy: not recorded (a load "
                        "stage before core/cpuidle.py)") + "."))
    blocks.append(Para(served_sections.reference_text(res.reference)))
    scheduling = sorted({p.scheduling for p in pts if p.mode == "open" and p.scheduling})
    if scheduling:  # real-time where permitted: a foreign burst on the generator's core waits, not the sends
        blocks.append(Para("Open-loop sending threads scheduled as: " + "; ".join(scheduling) + "."))
    blocks += [Para(served_sections.headroom_text(h)) for h in res.headrooms]
    return blocks


@section("curves", "Latency vs throughput")
def curves(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    closed = [p for p in res.load_points if p.mode == "closed"]
    if not closed:
        return _empty(res, "curves", "No closed-loop sweep recorded.")
    blocks: list[Block] = _lead(
        "Closed-loop sweeps: N concurrent users, each waiting for its answer, N = 1, 2, 4, ... until two steps "
        "add < 5% throughput or p99 passes the SLO. Invalid points are drawn as red crosses.",
        figures, "latency_throughput")
    blocks.append(served_sections.saturation_table(res))
    return blocks


@section("openloop", "Open loop: corrected vs uncorrected latency")
def openloop(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    pts = [p for p in res.load_points if p.mode == "open"]
    if not pts:
        return _empty(res, "openloop", "No open-loop points recorded.")
    blocks: list[Block] = _lead(
        "Requests arrive on a seeded Poisson schedule, independent of responses. *Corrected* latency runs from the "
        "scheduled send time (what a user waiting in line sees); *uncorrected* from the actual send, as a "
        "closed-loop tool would report it. Late sends are sends more than the configured threshold behind "
        "schedule.", figures, "openloop")
    blocks.append(Table(
        headers=["stack", "model", "offered", "achieved", "p50 corrected", "p50 uncorrected", "p99 corrected",
                 "p99 uncorrected", "late sends", "n"],
        rows=[[f"{p.stack} {p.protocol}", p.model, fmt.rate(p.target_rate), fmt.rate(p.throughput),
               fmt.percentile(p.latency, "p50"), fmt.percentile(p.uncorrected, "p50"),
               fmt.percentile(p.latency, "p99"), fmt.percentile(p.uncorrected, "p99"), fmt.pct(p.late_fraction),
               str(p.latency.n)] for p in pts],
        invalid_rows={i for i, p in enumerate(pts) if not p.valid},
        footnotes=["Latencies in ms. " + fmt.UNBACKED_NOTE, *_invalid_note(pts)]))
    return blocks


@section("paired", "Side by side: paired comparisons")
def paired(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    return served_sections.paired_section(res)


@section("serving-tax", "The serving tax, broken down")
def serving_tax(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    return served_sections.serving_tax(res, figures)


@section("runtimes", "Same server, each runtime")
def runtimes(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    return served_sections.runtimes(res)


@section("containers", "Native vs container")
def containers(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    return served_sections.containers(res, figures)


@section("memory", "Memory")
def memory(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    if not res.memory:
        return [Para("No memory figures recorded (they come from the floor and serving results).")]
    return [Para("Peak resident set size of each in-process runtime's process. A runtime measured in a fresh "
                 "process of its own gives a clean figure; *shared process* rows (quick profile grouping) include "
                 "whatever ran before them in that process. Server rows sum the per-process peaks (VmHWM) of the "
                 "server's whole process tree (frontend and every worker), sampled when ready and after the load."),
            Table(headers=["what", "kind", "peak RSS"],
                  rows=[[m.what, m.kind, fmt.size(m.peak_rss_bytes)] for m in res.memory])] + _worker_memory(res)


def _worker_memory(res: ReportResults) -> list[Block]:
    """Each served model's own worker process: what its framework costs inside the server."""
    if not res.workers:
        return []
    return [Para("Each served model's worker process on its own (TorchServe runs one Python process per model; every "
                 "worker imports torch, and its model's own framework on top): current and peak RSS at each sample."),
            Table(headers=["server", "served model", "stack", "twin", "phase", "RSS", "peak RSS"],
                  rows=[[w.server + (f" ({w.launcher})" if len(res.launchers) > 1 else ""), w.served_name, w.stack,
                         w.model, w.phase, fmt.size(w.rss_bytes), fmt.size(w.peak_rss_bytes)] for w in res.workers])]


@section("not-run", "What did not run, and why")
def not_run(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    blocks: list[Block] = []
    if res.not_run:
        blocks.append(Table(headers=["what", "reason", "command that enables it", "recorded in"],
                            rows=[[n.what, n.reason, f"`{n.enable_command}`", n.source] for n in res.not_run]))
    if res.missing:
        seen: dict[str, list[str]] = {}
        for m in res.missing:
            seen.setdefault(m.note, []).append(m.section)
        blocks.append(Para("Results files missing or unreadable in this run folder, and the sections that lack them:"))
        blocks.append(Bullets([f"{text} Affects {', '.join(f'[{s}](#{s})' for s in secs)}"
                               for text, secs in seen.items()]))
    if not blocks:
        blocks.append(Para("Everything ran."))
    return blocks
