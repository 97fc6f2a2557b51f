"""The seed study's comparison table, in our words, and the cells this run backs with figures.

The seed study (TensorFlow / Keras / Theano / PyTorch) makes claims in six rows. A run can measure
two of them: *Computational graph* (eager vs graph speed, PyTensor's compile cost) and *Deployment*
(exports, parity, in-process latency, servers). The other rows stay claims, marked "not measured".
"""
from __future__ import annotations

import functools
from collections.abc import Callable

from deploy_compare.report import fmt
from deploy_compare.report.model import FRAMEWORKS, Cell, ComparisonRow, ReportResults
from deploy_compare.report.served import saturation_text

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


FORMAT_NAMES = {"savedmodel": "SavedModel", "tflite": "TFLite", "torchscript": "TorchScript", "onnx": "ONNX"}
SERVER_NAMES = {"tfserving": "TF Serving", "torchserve": "TorchServe"}


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
                f"{g.twin} {fmt.num(g.eager_p50_ms)} → {fmt.num(g.graph_p50_ms)} ms ({g.latency_ratio:.2f}x)")
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
    rows = [a for a in res.artifacts if a.format == format_ and a.framework == framework]
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
    return [f"[{name}](#artifacts): {sizes}; {parity}{qtext}"]


def _floor_line(res: ReportResults, format_: str, framework: str, runtime: str | None = None) -> list[str]:
    pts = [f for f in res.floor if f.format == format_ and f.framework == framework and f.variant == "fp32"
           and f.batch == 1 and f.latency is not None and not f.error and runtime in (None, f.runtime)]
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
    name = SERVER_NAMES.get(server, server)
    cold = cold_start_by_server(res)
    out = [f"[{name}](#serving) cold start: {cold[server]}"] if server in cold else []
    for sat in res.saturations:
        if sat.stack.startswith(server) and sat.rps is not None:
            launcher = f", {sat.launcher}" if len(res.launchers) > 1 else ""
            out.append(f"[{name}](#curves) {sat.stack} {sat.protocol} ({sat.model}{launcher}): "
                       f"{saturation_text(sat)}")
    for n in res.not_run:
        if n.what.startswith(server):
            out.append(f"[{name}](#not-run) ({n.what}) not run here: {n.reason}")
    return out


def _deploy_tensorflow(res: ReportResults) -> list[str]:
    return (_artifact_line(res, "savedmodel", "tensorflow") + _floor_line(res, "savedmodel", "tensorflow")
            + _artifact_line(res, "tflite", "tensorflow") + _floor_line(res, "tflite", "tensorflow")
            + _server_lines(res, "tfserving"))


def _deploy_keras(res: ReportResults) -> list[str]:
    twins = sorted({a.twin for a in res.artifacts if a.framework == "tensorflow"})
    lines = [f"[exports](#artifacts) of the Keras twins ({', '.join(twins)}) are the TensorFlow column's "
             "SavedModel and TFLite artifacts"] if twins else []
    return (lines + _floor_line(res, "trained", "tensorflow", "keras-function")
            + _artifact_line(res, "onnx", "tensorflow", " (tf2onnx)") + _floor_line(res, "onnx", "tensorflow"))


def _deploy_theano(res: ReportResults) -> list[str]:
    if res.theano is None:
        return []
    none = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in res.theano.deployment.items()) or "none"
    return [f"[none](#floor) ({none}); Theano itself does not run here ([why](#not-run))"] + _theano_lines(res)


def _deploy_pytorch(res: ReportResults) -> list[str]:
    return (_artifact_line(res, "torchscript", "pytorch") + _floor_line(res, "torchscript", "pytorch")
            + _artifact_line(res, "onnx", "pytorch") + _floor_line(res, "onnx", "pytorch")
            + _server_lines(res, "torchserve"))


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
        "Keras": (_deploy_keras, "artifacts", ("artifacts",)),
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
