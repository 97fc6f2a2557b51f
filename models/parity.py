"""The parity gate: every exported artifact, loaded by its own runtime, answers the twin's fixed held-out
batch like the Keras reference (`logits_ref`).

Figures per artifact (`compare`): max abs error, max rel error (max |logits - ref| / max |ref|, i.e.
relative to the logit scale of the batch), top-1 agreement with the reference, accuracy on the labels.
Gate: fp32 artifacts need max abs error <= 1e-4 and 100% top-1 agreement;
quantized variants (TFLite int8-dynamic, fp16) are reported, not gated. An artifact that fails, or
cannot be loaded or run, fails the stage with its name and the failing figure, after parity.json
(every row) is saved: never dropped silently.

Isolation: one fresh process per runtime (SavedModel/TensorFlow, LiteRT, TorchScript, onnxruntime)
through `core.proc.run_isolated`, two at a time, so a runtime's crash or global state
(thread pools, a second TFLite runtime in a TensorFlow process) cannot touch another runtime's
figures, while the stage pays each framework's import only once.
"""
from __future__ import annotations

import sys
import time
import traceback
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core import results
from core.results import NotRun
from models.exporters.base import ArtifactRecord

if TYPE_CHECKING:
    from core.context import RunContext

PARITY_THREADS = 1
PARALLEL_RUNTIMES = 2
CHILD_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ParityTolerance:
    max_abs: float = 1e-4
    top1_agreement: float = 1.0


@dataclass
class ParityFigures:
    n: int  # samples in the batch
    max_abs_err: float
    max_rel_err: float  # max |logits - ref| / max |ref|
    top1_agreement: float  # fraction of samples whose argmax equals the reference's
    accuracy: float  # against the labels
    ref_accuracy: float  # the reference's accuracy on the same batch
    gated: bool  # False: reported only (quantized variants)
    passed: bool
    failure: str = ""  # the failing figure, e.g. "max abs error 3.1e-03 > 1e-04"


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


def compare(logits: np.ndarray, logits_ref: np.ndarray, y: np.ndarray,
            tolerance: ParityTolerance | None) -> ParityFigures:
    """Parity figures of `logits` against `logits_ref`; gated by `tolerance` unless it is None."""
    logits = np.asarray(logits, dtype=np.float64)
    ref = np.asarray(logits_ref, dtype=np.float64)
    if logits.shape != ref.shape:
        raise ValueError(f"logits shape {logits.shape} differs from the reference's {ref.shape}")
    diff = np.abs(logits - ref)
    max_abs = float(diff.max())
    scale = float(np.abs(ref).max())
    top1 = logits.argmax(axis=-1)
    ref_top1 = ref.argmax(axis=-1)
    agreement = float(np.mean(top1 == ref_top1))
    failures = []
    if tolerance is not None:
        if not max_abs <= tolerance.max_abs:  # also catches NaN
            failures.append(f"max abs error {max_abs:.2e} > {tolerance.max_abs:.0e}")
        if agreement < tolerance.top1_agreement:
            failures.append(f"top-1 agreement {agreement:.2%} < {tolerance.top1_agreement:.0%}")
    return ParityFigures(n=int(len(ref)), max_abs_err=max_abs, max_rel_err=max_abs / scale if scale else max_abs,
                         top1_agreement=agreement, accuracy=float(np.mean(top1 == y)),
                         ref_accuracy=float(np.mean(ref_top1 == y)), gated=tolerance is not None,
                         passed=not failures, failure="; ".join(failures))


def evaluate(payload: dict[str, Any]) -> list[Any]:
    """Child-process entry (`run_isolated`): parity rows of artifacts that share one runtime.
    A failing artifact becomes a row with its error (full traceback in this process's log)."""
    from core.rundir import RunDir
    from models.data import to_layout
    from models.runtimes.base import runtime_for
    from models.training import load_heldout
    from models.zoo import get_twin

    run_dir = RunDir(Path(payload["run_root"]))
    tolerance = results.from_json_data(ParityTolerance, payload["tolerance"])
    heldout: dict[str, dict[str, np.ndarray]] = {}
    rows = []
    for rec in results.from_json_data(list[ArtifactRecord], payload["records"]):
        t0 = time.perf_counter()
        row = _row(rec, runtime="")
        try:
            runtime = runtime_for(rec)
            row.runtime = runtime.name
            batch = heldout.setdefault(rec.twin, load_heldout(run_dir, rec.twin))
            x = to_layout(batch["x"], get_twin(rec.twin).keras_layout, rec.layout)
            runtime.load(run_dir.path / rec.path, payload["threads"])
            logits = runtime.predict(x)
            row.figures = compare(logits, batch["logits_ref"], batch["y"], None if rec.quantized else tolerance)
        except Exception as exc:  # recorded in the row; the gate fails on it by name
            print(f"parity: {rec.key} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            row.error = f"{type(exc).__name__}: {exc} (traceback in {payload['log']})"
        row.seconds = round(time.perf_counter() - t0, 4)
        rows.append(results.to_json_data(row))
    return rows


def _row(rec: ArtifactRecord, runtime: str, error: str = "") -> ParityRow:
    return ParityRow(artifact=rec.key, twin=rec.twin, format=rec.format, variant=rec.variant,
                     source_framework=rec.source_framework, runtime=runtime, layout=rec.layout, path=rec.path,
                     seconds=0.0, error=error)


def check(run_dir, manifest, tolerance: ParityTolerance = ParityTolerance(), threads: int = PARITY_THREADS,
          parallel: int = PARALLEL_RUNTIMES) -> ParityReport:
    """Parity rows of every artifact in `manifest` (one fresh process per runtime), in manifest order."""
    from core.proc import IsolatedError, run_isolated
    from models.runtimes.base import FORMAT_RUNTIMES, load_runtimes

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
            data = run_isolated("models.parity:evaluate", payload, timeout=CHILD_TIMEOUT_S, log_path=log)
        except IsolatedError as exc:  # the runtime's process died: every artifact of it fails, by name
            return [_row(rec, runtime, error=f"runtime process failed: {exc} (log: {log})") for rec in records]
        return results.from_json_data(list[ParityRow], data)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        by_key = {row.artifact: row for rows in pool.map(run_group, groups.items()) for row in rows}
    return ParityReport(run_id=manifest.run_id, tolerance=tolerance, threads=threads,
                        isolation="one fresh process per runtime (core.proc.run_isolated)",
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
    from models.exporters.stage import load_manifest

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
                      f"{f.top1_agreement:.1%}", f"{f.accuracy:.3f}", verdict)
    console.print(table)
    for row in report.rows:
        if not row.ok:
            console.print(f"[red]{row.artifact}[/]: {escape(row.problem())}")
    for nr in report.not_run:
        console.print(f"[yellow]not run[/] {nr.what}: {nr.reason}")
