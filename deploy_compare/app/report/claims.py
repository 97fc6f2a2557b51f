"""The seed study's comparison table, in our words, and the cells this run backs with figures.

The seed study (TensorFlow / Keras / Theano / PyTorch) makes claims in six rows. A run can measure
two of them: *Computational graph* (eager vs graph speed, PyTensor's compile cost) and *Deployment*
(exports, parity, in-process latency, servers). The other rows stay claims, marked "not measured".
"""
from __future__ import annotations

import functools
from collections.abc import Callable

from deploy_compare.app.report import fmt
from deploy_compare.app.report.model import FRAMEWORKS, Cell, ComparisonRow, ReportResults
from deploy_compare.app.report.served import saturation_text
from deploy_compare.core.stats import PairedRatio, paired_claim
from deploy_compare.loadtests.results import endpoint_label, one_factor_apart
from deploy_compare.serving import maintenance
from deploy_compare.serving.catalog import served_format

# row -> framework -> the seed study's claim, paraphrased
CLAIMS: dict[str, dict[str, str]] = {
    "Primary use case": {
        "TensorFlow": "production at scale, deployment and research",
        "Keras": "fast prototyping and research, beginner friendly",
        "Theano": "academic research; now deprecated",
        "PyTorch": "research and fast iteration",
    },
    "API level": {
        "TensorFlow": "low-level ops plus a high-level API (Keras)",
        "Keras": "high-level only",
        "Theano": "low-level",
        "PyTorch": "low-level, with torch.nn as the high-level layer",
    },
    "Computational graph": {
        "TensorFlow": "static graphs in 1.x; eager by default since 2.x",
        "Keras": "eager, inherited from TensorFlow 2.x",
        "Theano": "static graph",
        "PyTorch": "dynamic (define-by-run)",
    },
    "Ease of use": {
        "TensorFlow": "steep at the low level; Keras makes it friendly",
        "Keras": "the easiest start, for beginners and experiments",
        "Theano": "hard: graphs must be compiled explicitly",
        "PyTorch": "intuitive and Pythonic",
    },
    "Community & ecosystem": {
        "TensorFlow": "very large and mature, with tools such as TensorBoard",
        "Keras": "part of the TensorFlow ecosystem",
        "Theano": "inactive; obsolete",
        "PyTorch": "strong and growing; research-oriented docs",
    },
    "Deployment": {
        "TensorFlow": "broad deployment tooling (TF Serving, TF Lite, TF.js)",
        "Keras": "deploys through its TensorFlow backend",
        "Theano": "not suited to modern deployment",
        "PyTorch": "has TorchServe; less mature than TensorFlow's tooling",
    },
}

# rows no run of this toolkit can measure: why, shown once under the table
UNMEASURABLE = {
    "Primary use case": "a matter of intent, not of measurement",
    "API level": "a property of the API surface, not of a run",
    "Ease of use": "needs a user study",
    "Community & ecosystem": "needs ecosystem data (downloads, contributors), not a benchmark",
}


FORMAT_NAMES = {"savedmodel": "SavedModel", "tflite": "TFLite", "torchscript": "TorchScript", "onnx": "ONNX",
                "torch-export": "torch.export .pt2", "aoti": "AOTInductor .pt2"}
# Cited, not measured (rule 17): PyTorch's own notice, as its docs for the pinned torch state it
# (the source as text: the report is one self-contained file that links nothing outside itself)
TORCHSCRIPT_DEPRECATION = ("TorchScript is deprecated by PyTorch (\"TorchScript is deprecated, please use torch.export "
                           "instead\", PyTorch 2.13 docs, docs.pytorch.org/docs/2.13/notes/"
                           "cpu_threading_torchscript_inference.html, retrieved 2026-12-03)")
SERVER_NAMES = {"tfserving": "TF Serving", "torchserve": "TorchServe", "rayserve": "Ray Serve"}


# comparison column -> (floor framework, graph runtimes to cite; empty = all)
GRAPH_EVIDENCE = {"TensorFlow": ("tensorflow", ("savedmodel",)), "Keras": ("tensorflow", ("keras-function",)),
                  "PyTorch": ("pytorch", ())}


def _graph_lines(res: ReportResults, *, column: str) -> list[str]:
    framework, graphs = GRAPH_EVIDENCE[column]
    rows = [g for g in res.graph_ratios if g.framework == framework and (not graphs or g.graph in graphs)]
    threads = min((g.threads for g in rows), default=0)
    pairs: dict[tuple[str, str], list[str]] = {}
    for g in rows:
        if g.threads == threads:
            pairs.setdefault((g.eager, g.graph), []).append(
                f"{g.twin} {fmt.num(g.eager_p50_ms)} → {fmt.num(g.graph_p50_ms)} ms ({g.latency_ratio:.2f}x; "
                f"{graph_verdict(g)})")
    return [f"[{eager} → {graph}](#floor) batch-1 p50, {threads} thread (speed-up): {', '.join(parts)}"
            for (eager, graph), parts in pairs.items()]


def _theano_lines(res: ReportResults) -> list[str]:
    t = res.theano
    if t is None or not t.measured:
        return []
    return [f"[{t.successor}](#floor) (Theano's maintained successor), {twin}: graph compile "
            f"{fmt.seconds(t.compile_seconds.get(twin))}, then {fmt.ms(p50)} p50 per batch-1 call"
            for twin, p50 in t.p50_ms.items()]


def _artifact_line(res: ReportResults, format_: str, framework: str, suffix: str = "") -> list[str]:
    """The framework's own exports of one format (cross-framework conversions are in their own table)."""
    rows = [a for a in res.artifacts if a.format == format_ and a.framework == framework and not a.converter]
    if not rows:
        return []
    name = FORMAT_NAMES.get(format_, format_) + suffix
    sizes = ", ".join(f"{a.twin} {fmt.size(a.bytes)}" for a in rows if a.variant == "fp32") or fmt.NA
    checked = [a for a in rows if a.variant == "fp32" and a.parity != "not checked"]
    if checked:
        passed = sum(a.parity == "pass" for a in checked)
        worst = max((a.max_abs_error for a in checked if a.max_abs_error is not None), default=None)
        parity = f"parity {passed}/{len(checked)} pass (max abs err {fmt.sci(worst)})"
    else:
        parity = "parity not checked"
    quant: dict[str, list[float]] = {}
    for a in rows:
        if a.variant != "fp32" and a.top1_agreement is not None:
            quant.setdefault(a.variant, []).append(a.top1_agreement)
    qtext = "".join(f"; {variant} top-1 agreement {fmt.pct(min(v))}"
                    + (f"-{fmt.pct(max(v))}" if max(v) != min(v) else "") for variant, v in quant.items())
    compiled = ", ".join(f"{a.twin} {fmt.seconds(a.compile_seconds)}" for a in rows if a.compile_seconds is not None)
    ctext = f"; ahead-of-time compile {compiled}" if compiled else ""
    return [f"[{name}](#artifacts): {sizes}; {parity}{ctext}{qtext}"]


def _floor_line(res: ReportResults, format_: str, framework: str, runtime: str | None = None) -> list[str]:
    pts = [f for f in res.floor if f.format == format_ and f.framework == framework and f.variant == "fp32"
           and f.batch == 1 and f.latency is not None and not f.error and runtime in (None, f.runtime)
           and not f.converter]
    if not pts:
        return []
    threads = min(f.threads for f in pts)
    per_twin = ", ".join(f"{f.twin} {fmt.ms(f.latency.p50)}" for f in pts if f.threads == threads)
    return [f"[in-process](#floor) {runtime or pts[0].runtime} p50, batch 1, {threads} thread(s): {per_twin}"]


def cold_start_by_server(res: ReportResults) -> dict[str, str]:
    """Server -> one line: ready, model load, first request and sequential p50 over its endpoints."""
    out = {}
    for server in dict.fromkeys(c.server for c in res.cold_start):
        rows = [c for c in res.cold_start if c.server == server]
        out[server] = (f"ready in {fmt.span([c.start_to_ready_s for c in rows], 's')}, model load "
                       f"{fmt.span([c.model_load_s for c in rows], 's')}, first request "
                       f"{fmt.span([c.first_request_ms for c in rows], 'ms')}, then sequential p50 "
                       f"{fmt.span([c.steady_p50_ms for c in rows], 'ms')} ({len(rows)} endpoints)")
    return out


def _server_lines(res: ReportResults, server: str) -> list[str]:
    """The server's cold start over all its endpoints and why it did not run, if it did not."""
    name = SERVER_NAMES.get(server, server)
    cold = cold_start_by_server(res)
    out = [f"[{name}](#serving) cold start: {cold[server]}"] if server in cold else []
    # the comparisons that isolate one choice (format, protocol or launcher); the others are in the section
    out += paired_lines(res, lambda c: c.a.startswith(server) and c.b.startswith(server)
                        and (c.metric, c.load) == ("p50_ms", "1 users") and one_factor_apart(c.a, c.b))
    for n in res.not_run:
        if n.what.startswith(server):
            out.append(f"[{name}](#not-run) ({n.what}) not run here: {n.reason}; runs with `{n.enable_command}`")
    return out


def _served_lines(res: ReportResults, framework: str, exporters: tuple[str, ...]) -> list[str]:
    """One line per load-tested stack serving this column's artifacts (whichever server serves them): p50 at
    1 user, saturation, model load, the worker's memory."""
    out = []
    for r in res.scorecard:
        found = served_format(r.stack)
        if found is None or found[0].framework != framework or found[0].exporter not in exporters:
            continue
        server, _, flavor = r.stack.partition("/")
        launcher = f", {r.launcher}" if len(res.launchers) > 1 else ""
        out.append(f"[served by {SERVER_NAMES.get(server, server)}](#runtimes) {flavor} {r.protocol} "
                   f"({r.model}{launcher}): p50 at 1 user {fmt.ms(r.served_p50_ms)}, {saturation_text(r.saturation)}, "
                   f"model load {fmt.seconds(r.model_load_s)}, worker {fmt.size(r.worker_bytes)}")
    return out


def _status_line(project: str) -> list[str]:
    row = next((s for s in maintenance.STATUS if s.project == project), None)
    if row is None:
        return []
    return [f"[{project} status](#comparison): {row.status}; last release {row.last_release} "
            f"({maintenance.LABEL})"]


def _deploy_tensorflow(res: ReportResults) -> list[str]:
    return (_artifact_line(res, "savedmodel", "tensorflow") + _floor_line(res, "savedmodel", "tensorflow")
            + _artifact_line(res, "tflite", "tensorflow") + _floor_line(res, "tflite", "tensorflow")
            + _served_lines(res, "tensorflow", ("savedmodel", "tflite"))
            + _server_lines(res, "tfserving") + _status_line("TF Serving"))


def _deploy_keras(res: ReportResults) -> list[str]:
    twins = sorted({a.twin for a in res.artifacts if a.framework == "tensorflow"})
    lines = [f"[exports](#artifacts) of the Keras twins ({', '.join(twins)}) are the TensorFlow column's "
             "SavedModel and TFLite artifacts (served rows there)"] if twins else []
    return (lines + _floor_line(res, "trained", "tensorflow", "keras-function")
            + _artifact_line(res, "onnx", "tensorflow", " (tf2onnx)") + _floor_line(res, "onnx", "tensorflow")
            + _served_lines(res, "tensorflow", ("onnx-tf",)))


def _deploy_theano(res: ReportResults) -> list[str]:
    if res.theano is None:
        return []
    none = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in res.theano.deployment.items()) or "none"
    return [f"[none](#floor) ({none}); Theano itself: {res.theano.outcome} ([details](#not-run))"] + _theano_lines(res)


def _deploy_pytorch(res: ReportResults) -> list[str]:
    torchscript = _artifact_line(res, "torchscript", "pytorch")
    if torchscript:
        torchscript[0] += f"; {TORCHSCRIPT_DEPRECATION}"
    return (_artifact_line(res, "torch-export", "pytorch") + _floor_line(res, "torch-export", "pytorch")
            + _artifact_line(res, "aoti", "pytorch") + _floor_line(res, "aoti", "pytorch")
            + torchscript + _floor_line(res, "torchscript", "pytorch")
            + _artifact_line(res, "onnx", "pytorch") + _floor_line(res, "onnx", "pytorch")
            + _served_lines(res, "pytorch", ("torchscript", "onnx-torch"))
            + _server_lines(res, "torchserve") + _status_line("TorchServe"))


Evidence = Callable[[ReportResults], list[str]]
# measured row -> column -> (evidence builder, section holding the figures, sections whose absence leaves it short)
SERVED = ("artifacts", "floor", "serving", "curves")
EVIDENCE: dict[str, dict[str, tuple[Evidence, str, tuple[str, ...]]]] = {
    "Computational graph": {
        "TensorFlow": (functools.partial(_graph_lines, column="TensorFlow"), "floor", ("floor",)),
        "Keras": (functools.partial(_graph_lines, column="Keras"), "floor", ("floor",)),
        "Theano": (_theano_lines, "floor", ("floor",)),
        "PyTorch": (functools.partial(_graph_lines, column="PyTorch"), "floor", ("floor",)),
    },
    "Deployment": {
        "TensorFlow": (_deploy_tensorflow, "artifacts", SERVED),
        "Keras": (_deploy_keras, "artifacts", ("artifacts", "curves")),
        "Theano": (_deploy_theano, "floor", ("floor",)),
        "PyTorch": (_deploy_pytorch, "serving", SERVED),
    },
}


def comparison(res: ReportResults) -> list[ComparisonRow]:
    rows = []
    for feature, claims in CLAIMS.items():
        cells = {}
        for fw in FRAMEWORKS:
            cell = Cell(claim=claims[fw])
            if feature in EVIDENCE:
                build, cell.link, needs = EVIDENCE[feature][fw]
                cell.measured = build(res)
                cell.gaps = list(dict.fromkeys(m.file for m in res.missing if m.section in needs))
                if cell.measured:
                    cell.status = "measured"
                elif cell.gaps:
                    cell.status = "missing"
            cells[fw] = cell
        rows.append(ComparisonRow(feature=feature, cells=cells))
    return rows


# --- what paired rounds let the report say (conventions rule 15): any section comparing two endpoints calls these

def endpoint_name(row) -> str:
    """The stage's name of a scorecard / saturation / load-point row's endpoint (its paired comparisons use it)."""
    return endpoint_label(row.stack, row.protocol, row.model, row.launcher or "")


def paired(res: ReportResults, a: str, b: str, metric: str, load: str) -> PairedRatio | None:
    """The stored comparison of endpoint `a` over `b` (either way round in the run), or None."""
    for c in res.comparisons:
        if c.metric == metric and c.load == load and {c.a, c.b} == {a, b}:
            return c if c.a == a else c.flipped()
    return None


def paired_at_top(res: ReportResults, a: str, b: str, metric: str) -> PairedRatio | None:
    """The comparison at the highest load both were measured at (e.g. throughput near saturation)."""
    loads = sorted({c.load for c in res.comparisons if c.metric == metric and {c.a, c.b} == {a, b}},
                   key=lambda load: int(load.split()[0]) if load.split()[0].isdigit() else 0)
    return paired(res, a, b, metric, loads[-1]) if loads else None


def difference_text(r: PairedRatio | None, *, level: float = 0.99) -> str:
    """A difference cell: "+X% (lo to hi)" of a over b only when the `level` interval excludes no difference;
    otherwise "no difference found (within ±Y%)"; n/a without paired rounds."""
    if r is None:
        return f"{fmt.NA} (not measured side by side)"
    lo, hi = (r.ci99_lo, r.ci99_hi) if level >= 0.99 else (r.ci95_lo, r.ci95_hi)
    if lo is None or hi is None:
        return f"too few rounds ({r.n}) to tell"
    if not r.excludes_one(level):
        return f"no difference found (within ±{r.within():.0%}, {r.n} rounds)"
    return f"{r.ratio - 1:+.0%} ({lo - 1:+.0%} to {hi - 1:+.0%}, {level:.0%}, {r.n} rounds)"


def paired_lines(res: ReportResults, keep: Callable[[PairedRatio], bool], *, anchor: str = "paired") -> list[str]:
    """One sentence per stored comparison that `keep` selects, saying only what its 99% interval supports."""
    return [f"[side by side](#{anchor}): {paired_claim(c)}" for c in res.comparisons if keep(c)]


def _idle(record) -> str:
    if record is None:
        return "not recorded"
    return "polling" if record.held else f"as the kernel chose ({record.policy})"


def subtraction_conditions(res: ReportResults) -> str:
    """The serving tax subtracts the floor from served figures (conventions rule 16): under which idle policy
    each was measured, and whether they differ."""
    floor, load = _idle(res.floor_cpu_idle), _idle(res.cpu_idle)
    if res.floor_cpu_idle is None or res.cpu_idle is None:
        return (f"Serving tax: idle policy of the in-process floor {floor}, of the served figures {load}: a run "
                "that does not record both cannot show that the tax subtracts like from like.")
    if floor == load:
        return f"Serving tax: the in-process floor and the served figures were both measured with idle CPUs {load}."
    return (f"Serving tax: the in-process floor was measured with idle CPUs {floor}, the served figures with them "
            f"{load}: the two differ, so part of the tax may be the idle policy's.")


def graph_verdict(g) -> str:
    """What a Computational-graph ratio supports: graph faster / eager faster only where its paired 99% interval
    excludes no difference; measured in separate processes (no paired rounds): no ranking."""
    r = g.paired
    if r is None:
        return "measured one after another: no ranking"
    win = r.winner()
    if win is None:
        w = r.within()
        return f"no difference found at 99% (within ±{w:.0%})" if w is not None else f"too few rounds ({r.n})"
    lo, hi = r.ci99_lo, r.ci99_hi
    side = "graph" if win == r.b else "eager"
    return f"{side} faster at 99% ({lo:.2f}-{hi:.2f}x over {r.n} paired rounds)"


def fastest_text(comparisons: list[PairedRatio], best: str, twin: str) -> str:
    """"fastest" for the point of lowest p50 only when every paired comparison with it (batch 1) says so at 99%."""
    mine = [c if c.a.startswith(best) else c.flipped() for c in comparisons
            if c.load == "batch 1" and (c.a.startswith(best) or c.b.startswith(best))
            and c.a.startswith(f"{twin}/") and c.b.startswith(f"{twin}/")]
    if not mine:
        return "lowest p50 (not measured side by side with the others: no ranking)"
    tied = [c.b.split(" (")[0] for c in mine if c.winner() != c.a]
    if not tied:
        return f"fastest at 99% against all {len(mine)} measured beside it"
    return f"lowest p50, not separated at 99% from {', '.join(tied)}"
