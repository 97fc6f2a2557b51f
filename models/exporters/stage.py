"""The `export` stage: every twin of the profile, every registered exporter, into `artifacts/<twin>/<format>/`.

Each exporter gets the trained model of its own framework (`deploy_compare.models.training.load_trained`: the Keras
reference, and the PyTorch twin holding the transplanted Keras weights) with the input shape in that
framework's layout. A failing exporter fails the stage with the twin and exporter named, unless it is
`optional` (ONNX from TensorFlow, the cross-framework converters): then the manifest records a NotRun with
the real error. The profile's `ExportSettings.exclude` leaves exports out, each recorded as a NotRun.
The manifest is saved after every twin, so a failure leaves what was exported on disk.
"""
from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

import numpy as np

from deploy_compare.core import results
from deploy_compare.core.config import ExportSettings
from deploy_compare.core.results import NotRun
from deploy_compare.models.exporters.base import Exporter, ExportJob, Manifest, load_exporters

if TYPE_CHECKING:
    from deploy_compare.core.context import RunContext
    from deploy_compare.core.rundir import RunDir


class ExportFailed(RuntimeError):
    pass


def jobs_for(run_dir: RunDir, twin_name: str) -> dict[str, ExportJob]:
    """source framework -> ExportJob for one trained twin."""
    from deploy_compare.models.data import to_layout
    from deploy_compare.models.training import load_heldout, load_trained
    from deploy_compare.models.zoo import get_twin

    twin = get_twin(twin_name)
    keras_model, torch_model = load_trained(run_dir, twin_name)
    sample = np.zeros((1, *twin.input_shape), np.float32)
    torch_shape = tuple(to_layout(sample, twin.keras_layout, twin.torch_layout).shape[1:])
    held = load_heldout(run_dir, twin_name)  # real inputs to trace with (token ids need their range)
    common = {"twin": twin_name, "out_dir": run_dir.twin_dir(twin_name), "run_root": run_dir.path,
              "input_dtype": twin.input_dtype}
    return {"tensorflow": ExportJob(model=keras_model, input_shape=tuple(twin.input_shape),
                                    layout=twin.keras_layout, sample=held.input_in(twin.keras_layout), **common),
            "pytorch": ExportJob(model=torch_model, input_shape=torch_shape, layout=twin.torch_layout,
                                 sample=held.input_in(twin.torch_layout), **common)}


def run_exporter(exporter: Exporter, job: ExportJob, manifest: Manifest) -> None:
    """Export into `manifest`; a failure raises naming twin and exporter, or is a NotRun if `optional`."""
    try:
        manifest.artifacts.extend(exporter.export(job))
    except Exception as exc:
        if not exporter.optional:
            raise ExportFailed(f"exporter {exporter.name} failed on twin {job.twin!r}: {type(exc).__name__}: {exc}") \
                from exc
        manifest.not_run.append(NotRun(what=f"{job.twin}/{exporter.name}", reason=f"{type(exc).__name__}: {exc}",
                                       enable_command=exporter.enable_command))


def excluded(twin: str, exporter: str, settings: ExportSettings) -> bool:
    return any(fnmatch.fnmatchcase(f"{twin}/{exporter}", pattern) for pattern in settings.exclude)


def export_twin(run_dir: RunDir, twin_name: str, manifest: Manifest, settings: ExportSettings | None = None,
                on_done=lambda name: None) -> None:
    """Every registered exporter on one twin, but those `settings.exclude` leaves out (recorded as NotRun)."""
    from deploy_compare.models.subjects.export import export_subject
    from deploy_compare.models.subjects.stage import load_subject_record

    settings = settings or ExportSettings()

    def left_out(name: str) -> str:
        if not excluded(twin_name, name, settings):
            return ""
        return f"left out of this profile's export scope (ExportSettings.exclude = {', '.join(settings.exclude)})"

    subject = load_subject_record(run_dir, twin_name)
    if subject is not None:  # a user's model (`run --model`), not a zoo twin
        export_subject(run_dir, subject, manifest, on_done, left_out)
        return
    jobs = jobs_for(run_dir, twin_name)
    for name, cls in load_exporters().items():
        if left_out(name):
            manifest.not_run.append(NotRun(
                what=f"{twin_name}/{name}", reason=left_out(name),
                enable_command="deploy-compare run --profile full --stages export  # or a profile without the "
                               "pattern"))
        else:
            exporter = cls()
            run_exporter(exporter, jobs[exporter.source_framework], manifest)
        on_done(name)


def load_manifest(run_dir: RunDir) -> Manifest:
    return results.load(Manifest, run_dir.manifest)


def run_stage(ctx: RunContext) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    twins = ctx.config.profile.train.twins
    manifest = Manifest(run_id=ctx.config.run_id)
    exporters = load_exporters().names()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=ctx.console) as progress:
        task = progress.add_task("export", total=len(twins) * len(exporters))
        for twin in twins:
            progress.update(task, description=f"export {twin}")
            export_twin(ctx.run_dir, twin, manifest, ctx.config.profile.export,
                        on_done=lambda name, t=twin: progress.update(task, advance=1, description=f"{t}: {name}"))
            results.save(manifest, ctx.run_dir.manifest)
    _print_manifest(ctx, manifest)


def _print_manifest(ctx: RunContext, manifest: Manifest) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"manifest: {len(manifest.artifacts)} artifacts")
    table.add_column("artifact", no_wrap=True)
    for col in ("layout", "input shape", "KiB", "export s"):
        table.add_column(col, no_wrap=True)
    for rec in manifest.artifacts:
        table.add_row(rec.key, rec.layout, escape(rec.inputs[0].shape_text()), f"{rec.bytes / 1024:.0f}",
                      f"{rec.export_seconds:.2f}")
    ctx.console.print(table)
    for nr in manifest.not_run:
        ctx.console.print(f"[yellow]not run[/] {nr.what}: {nr.reason}")
    ctx.console.print(f"manifest: {ctx.run_dir.manifest}")
