"""The parity gate: every exported artifact, loaded by its own runtime, answers the model's fixed reference
batch (`deploy_compare.models.heldout`) like the reference model: a twin's Keras model, or a user's own model.

Figures per artifact (`compare`): max abs error, max rel error (max |out - ref| / max |ref|, i.e.
relative to the output scale of the batch), and where the output kind has one (class logits, per-token
logits) top-1 agreement with the reference; accuracy where the batch has labels. The tolerance each output
was held to is recorded with its figures.
Gate: fp32 artifacts need max abs error <= 1e-4 (or, for a user's model, max rel error <= its batch's
`max_rel`) and, where top-1 applies, 100% top-1 agreement;
quantized variants (TFLite int8-dynamic, fp16) are reported, not gated. An artifact that fails, or
cannot be loaded or run, fails the stage with its name and the failing figure, after parity.json
(every row) is saved: never dropped silently.

Isolation: one fresh process per runtime (SavedModel/TensorFlow, LiteRT, TorchScript, onnxruntime)
through `deploy_compare.core.proc.run_isolated`, two at a time, so a runtime's crash or global state
(thread pools, a second TFLite runtime in a TensorFlow process) cannot touch another runtime's
figures, while the stage pays each framework's import only once.
"""
from __future__ import annotations

import sys
import time
import traceback
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deploy_compare.core import results
from deploy_compare.core.kinds import OutputKind
from deploy_compare.core.results import NotRun
from deploy_compare.models.exporters.base import ArtifactRecord
from deploy_compare.models.heldout import HeldoutBatch

if TYPE_CHECKING:
    from deploy_compare.core.context import RunContext

PARITY_THREADS = 1
PARALLEL_RUNTIMES = 2
CHILD_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ParityTolerance:
    """The gate. An output passes when max abs error <= max_abs, or (where `max_rel` is set: a user's
    model, whose output scale the toolkit does not know) max rel error <= max_rel; and, for outputs whose
    kind has a top-1 (class or per-token logits), top-1 agreement >= top1_agreement."""

    max_abs: float = 1e-4
    top1_agreement: float = 1.0
    max_rel: float | None = None

    def for_output(self, kind: OutputKind, max_rel: float | None) -> ParityTolerance:
        """This gate applied to one output: its kind decides whether top-1 applies, the batch its max_rel."""
        return replace(self, max_rel=self.max_rel if max_rel is None else max_rel,
                       top1_agreement=self.top1_agreement if kind in TOP1_KINDS else 0.0)


TOP1_KINDS = frozenset({OutputKind.CLASS_LOGITS, OutputKind.TOKEN_LOGITS})


@dataclass
class ParityFigures:
    n: int  # samples in the batch
    max_abs_err: float
    max_rel_err: float  # max |out - ref| / max |ref|
    top1_agreement: float | None  # fraction of argmax (per sample, or per token) equal to the reference's
    accuracy: float | None  # against the labels (a zoo twin's held-out batch), else None
    ref_accuracy: float | None  # the reference's accuracy on the same batch
    gated: bool  # False: reported only (quantized variants)
    passed: bool
    failure: str = ""  # the failing figure, e.g. "max abs error 3.1e-03 > 1e-04"
    output_kind: OutputKind = OutputKind.CLASS_LOGITS
    tolerance: ParityTolerance | None = None  # the gate this output was held to (None: reported only)


@dataclass(kw_only=True)
class ParityOutcome:
    """One parity check: its figures, or why it could not be made (in-process artifact or served endpoint)."""

    figures: ParityFigures | None = None
    error: str = ""  # the artifact could not be loaded or run / the server could not be asked

    @property
    def ok(self) -> bool:
        return not self.error and self.figures is not None and self.figures.passed

    def problem(self) -> str:
        return self.error or (self.figures.failure if self.figures else "no figures")


@dataclass
class ParityRow(ParityOutcome):
    artifact: str  # ArtifactRecord.key: twin/exporter/variant
    twin: str
    format: str
    variant: str
    source_framework: str
    runtime: str
    layout: str
    path: str  # relative to the run folder
    seconds: float  # load + one prediction, in the runtime's process


@dataclass
class ParityReport:
    run_id: str
    tolerance: ParityTolerance
    threads: int
    isolation: str
    rows: list[ParityRow] = field(default_factory=list)
    not_run: list[NotRun] = field(default_factory=list)  # from the manifest (exports that could not run)


class ParityFailed(RuntimeError):
    pass


def compare(out: np.ndarray, ref: np.ndarray, y: np.ndarray | None, tolerance: ParityTolerance | None,
            kind: OutputKind = OutputKind.CLASS_LOGITS, max_rel: float | None = None) -> ParityFigures:
    """Parity figures of `out` against the reference output `ref` for an output of `kind`; gated by
    `tolerance` (applied to this output: `ParityTolerance.for_output`) unless it is None."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if out.shape != ref.shape:
        raise ValueError(f"output shape {out.shape} differs from the reference's {ref.shape}")
    diff = np.abs(out - ref)
    max_abs = float(diff.max())
    scale = float(np.abs(ref).max())
    max_rel_err = max_abs / scale if scale else max_abs
    top1 = ref_top1 = None
    agreement = None
    if kind in TOP1_KINDS:
        top1, ref_top1 = out.argmax(axis=-1), ref.argmax(axis=-1)
        agreement = float(np.mean(top1 == ref_top1))
    gate = tolerance.for_output(kind, max_rel) if tolerance is not None else None
    failures = []
    if gate is not None:
        within_rel = gate.max_rel is not None and max_rel_err <= gate.max_rel
        if not (max_abs <= gate.max_abs or within_rel):  # `not <=` also catches NaN
            rel = f" and max rel error {max_rel_err:.2e} > {gate.max_rel:.0e}" if gate.max_rel is not None else ""
            failures.append(f"max abs error {max_abs:.2e} > {gate.max_abs:.0e}{rel}")
        if agreement is not None and agreement < gate.top1_agreement:
            failures.append(f"top-1 agreement {agreement:.2%} < {gate.top1_agreement:.0%}")
    labelled = y is not None and top1 is not None and kind == OutputKind.CLASS_LOGITS
    return ParityFigures(n=int(len(ref)), max_abs_err=max_abs, max_rel_err=max_rel_err, top1_agreement=agreement,
                         accuracy=float(np.mean(top1 == y)) if labelled else None,
                         ref_accuracy=float(np.mean(ref_top1 == y)) if labelled else None,
                         gated=gate is not None, passed=not failures, failure="; ".join(failures),
                         output_kind=kind, tolerance=gate)


def compare_batch(out: np.ndarray, batch: HeldoutBatch, tolerance: ParityTolerance | None) -> ParityFigures:
    """`compare` against a reference batch: its labels, output kind and relative tolerance."""
    return compare(out, batch.ref, batch.y, tolerance, batch.output_kind, batch.max_rel)


def evaluate(payload: dict[str, Any]) -> list[Any]:
    """Child-process entry (`run_isolated`): parity rows of artifacts that share one runtime.
    A failing artifact becomes a row with its error (full traceback in this process's log)."""
    from deploy_compare.core.rundir import RunDir
    from deploy_compare.models.runtimes.base import runtime_for
    from deploy_compare.models.training import load_heldout

    run_dir = RunDir(Path(payload["run_root"]))
    tolerance = results.from_json_data(ParityTolerance, payload["tolerance"])
    heldout: dict[str, HeldoutBatch] = {}
    rows = []
    for rec in results.from_json_data(list[ArtifactRecord], payload["records"]):
        t0 = time.perf_counter()
        row = _row(rec, runtime="")
        try:
            runtime = runtime_for(rec)
            row.runtime = runtime.name
            batch = heldout.setdefault(rec.twin, load_heldout(run_dir, rec.twin))
            x = batch.input_in(rec.layout)
            runtime.load(run_dir.path / rec.path, payload["threads"])
            row.figures = compare_batch(predict_all(runtime, rec.dynamic_batch, x), batch,
                                        None if rec.quantized else tolerance)
        except Exception as exc:  # recorded in the row; the gate fails on it by name
            print(f"parity: {rec.key} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            row.error = f"{type(exc).__name__}: {exc} (traceback in {payload['log']})"
        row.seconds = round(time.perf_counter() - t0, 4)
        rows.append(results.to_json_data(row))
    return rows


def predict_all(runtime: Any, dynamic_batch: bool, x: np.ndarray) -> np.ndarray:
    """Logits of the whole batch `x`: in one call, or one sample at a time for a fixed-batch (1) artifact."""
    if dynamic_batch:
        return np.asarray(runtime.predict(x))
    return np.concatenate([np.asarray(runtime.predict(x[i:i + 1])) for i in range(len(x))])


def _row(rec: ArtifactRecord, runtime: str, error: str = "") -> ParityRow:
    return ParityRow(artifact=rec.key, twin=rec.twin, format=rec.format, variant=rec.variant,
                     source_framework=rec.source_framework, runtime=runtime, layout=rec.layout, path=rec.path,
                     seconds=0.0, error=error)


def check(run_dir, manifest, tolerance: ParityTolerance = ParityTolerance(), threads: int = PARITY_THREADS,
          parallel: int = PARALLEL_RUNTIMES) -> ParityReport:
    """Parity rows of every artifact in `manifest` (one fresh process per runtime), in manifest order."""
    from deploy_compare.core.proc import IsolatedError, run_isolated
    from deploy_compare.models.runtimes.base import FORMAT_RUNTIMES, load_runtimes

    load_runtimes()
    groups: dict[str, list[ArtifactRecord]] = defaultdict(list)
    for rec in manifest.artifacts:
        groups[FORMAT_RUNTIMES.get(rec.format)].append(rec)

    def run_group(item: tuple[str, list[ArtifactRecord]]) -> list[ParityRow]:
        runtime, records = item
        log = run_dir.logs / f"parity-{runtime}.log"
        payload = {"run_root": str(run_dir.path), "threads": threads, "tolerance": results.to_json_data(tolerance),
                   "records": results.to_json_data(records, list[ArtifactRecord]), "log": str(log)}
        try:
            data = run_isolated("deploy_compare.models.parity:evaluate", payload, timeout=CHILD_TIMEOUT_S, log_path=log)
        except IsolatedError as exc:  # the runtime's process died: every artifact of it fails, by name
            return [_row(rec, runtime, error=f"runtime process failed: {exc} (log: {log})") for rec in records]
        return results.from_json_data(list[ParityRow], data)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        by_key = {row.artifact: row for rows in pool.map(run_group, groups.items()) for row in rows}
    return ParityReport(run_id=manifest.run_id, tolerance=tolerance, threads=threads,
                        isolation="one fresh process per runtime (deploy_compare.core.proc.run_isolated)",
                        rows=[by_key[rec.key] for rec in manifest.artifacts], not_run=list(manifest.not_run))


def gate(report: ParityReport) -> None:
    failed = [row for row in report.rows if not row.ok]
    if failed:
        raise ParityFailed(f"{len(failed)} artifact(s) failed the parity gate: " + "; ".join(
            f"{row.artifact} ({row.path}): {row.problem()}" for row in failed)
            + ". Rows are in parity.json; inspect the artifact with `deploy-compare inspect PATH`.")


def load_report(run_dir) -> ParityReport:
    return results.load(ParityReport, run_dir.parity)


def run_stage(ctx: RunContext) -> None:
    from deploy_compare.models.exporters.stage import load_manifest

    manifest = load_manifest(ctx.run_dir)
    with ctx.console.status(f"parity: {len(manifest.artifacts)} artifacts, one process per runtime"):
        report = check(ctx.run_dir, manifest)
    results.save(report, ctx.run_dir.parity)
    print_table(ctx.console, report)
    gate(report)


def print_table(console, report: ParityReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"parity (gate for fp32: max abs <= {report.tolerance.max_abs:.0e}, "
                        f"top-1 agreement {report.tolerance.top1_agreement:.0%})")
    table.add_column("artifact", no_wrap=True)
    for col in ("max abs", "max rel", "top-1", "acc"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("result")
    for row in report.rows:
        f = row.figures
        if f is None:
            table.add_row(row.artifact, "-", "-", "-", "-", "[red]ERROR[/]")
            continue
        verdict = ("[green]pass[/]" if f.passed else f"[red]FAIL[/] {f.failure}") if f.gated else "reported"
        table.add_row(row.artifact, f"{f.max_abs_err:.1e}", f"{f.max_rel_err:.1e}",
                      "-" if f.top1_agreement is None else f"{f.top1_agreement:.1%}",
                      "-" if f.accuracy is None else f"{f.accuracy:.3f}", verdict)
    console.print(table)
    for row in report.rows:
        if not row.ok:
            console.print(f"[red]{row.artifact}[/]: {escape(row.problem())}")
    for nr in report.not_run:
        console.print(f"[yellow]not run[/] {nr.what}: {nr.reason}")
