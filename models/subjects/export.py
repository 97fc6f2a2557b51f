"""Export of a user's model: every registered exporter of the framework the model feeds, the model's own
artifact (an ONNX file), and a NotRun with the real reason for everything else.

Unlike a zoo twin, a user's model may use ops an exporter cannot take: such an exporter's error is
recorded as a NotRun (the run goes on with what could be exported); only a model that reaches no
format at all fails the stage.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from deploy_compare.core.config import ModelOptions
from deploy_compare.core.results import NotRun
from deploy_compare.models.exporters.base import ExportJob, Manifest, load_exporters
from deploy_compare.models.subjects.base import InputSpec, SubjectError, SubjectRecord, open_subject

if TYPE_CHECKING:
    from deploy_compare.core.rundir import RunDir


def export_subject(run_dir: RunDir, record: SubjectRecord, manifest: Manifest, on_done=lambda name: None,
                   left_out=lambda name: "") -> None:
    """`left_out(exporter name)`: why the profile leaves that exporter out ("" when it runs)."""
    from deploy_compare.models.heldout import load_batch

    subject = open_subject(ModelOptions(path=record.path, state_dict=record.state_dict))
    subject.load()
    spec = InputSpec(tuple(record.input_shape), record.input_dtype)
    batch = load_batch(run_dir.heldout(record.name), record.name)
    job = ExportJob(twin=record.name, model=None, input_shape=spec.shape, layout=batch.layout,
                    out_dir=run_dir.twin_dir(record.name), run_root=run_dir.path, input_dtype=spec.dtype,
                    sample=batch.x)
    before = len(manifest.artifacts)
    manifest.artifacts.extend(subject.own_artifacts(job))
    model = subject.export_model(spec) if subject.framework else None
    for name, cls in load_exporters().items():
        exporter = cls()
        what = f"{record.name}/{name}"
        if left_out(name):
            manifest.not_run.append(NotRun(what=what, reason=left_out(name), enable_command=""))
        elif exporter.source_framework != subject.framework:
            reason = record.unreachable.get(exporter.source_framework, f"{record.kind} feeds no {name} exporter")
            manifest.not_run.append(NotRun(what=what, reason=reason, enable_command=""))
        else:
            try:
                manifest.artifacts.extend(exporter.export(ExportJob(**{**job.__dict__, "model": model})))
            except Exception as exc:  # the model's own limits (an op the exporter cannot take): recorded
                manifest.not_run.append(NotRun(what=what, reason=f"{type(exc).__name__}: {_first_line(exc)}",
                                               enable_command=exporter.enable_command))
        on_done(name)
    if len(manifest.artifacts) == before:
        raise SubjectError(f"{record.kind} model {record.path}: no format could be exported: " + "; ".join(
            f"{nr.what}: {nr.reason}" for nr in manifest.not_run if nr.what.startswith(f"{record.name}/")))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:400] if text else ""
