"""The spine's results: models.json (twins), manifest.json (artifacts), parity.json (the parity gate)."""
from __future__ import annotations

from pathlib import Path

from deploy_compare.app.report.model import ArtifactRow, ModelRow, ReportResults
from deploy_compare.app.report.sources import source
from deploy_compare.core import results


@source("models.json", "train", "models")
def models(path: Path, res: ReportResults) -> list[results.NotRun]:
    from deploy_compare.models.training import TwinRecord

    for r in results.load(list[TwinRecord], path):
        untrained = f"untrained ({r.untrained}): " if r.untrained else ""
        res.models += [
            ModelRow(twin=r.twin, dataset=r.dataset, framework="Keras (fit)", params=r.params_keras,
                     accuracy=r.accuracy_keras, train_seconds=r.train_seconds_keras, epochs=r.epochs,
                     note=f"{untrained}the reference model", flops=r.flops),
            ModelRow(twin=r.twin, dataset=r.dataset, framework="PyTorch (own loop)", params=r.params_torch,
                     accuracy=r.accuracy_torch_native, train_seconds=r.train_seconds_torch, epochs=r.epochs),
            ModelRow(twin=r.twin, dataset=r.dataset, framework="PyTorch (Keras weights)", params=r.params_torch,
                     accuracy=r.accuracy_torch_transplanted, train_seconds=None, epochs=None,
                     note=f"transplant max abs logit diff {r.transplant_max_abs_diff:.1e}"),
        ]
    if path.with_name("subject.json").exists():  # a `run --model` run: the user's model, no twins
        subject(path.with_name("subject.json"), res)
    return []


def subject(path: Path, res: ReportResults) -> None:
    """A user's model (`run --model`, subject.json beside models.json): what it is, its input and where its
    reference batch came from."""
    from deploy_compare.models.subjects.base import SubjectRecord

    r = results.load(SubjectRecord, path)
    res.models.append(ModelRow(
        twin=r.name, dataset=r.sample_origin, framework=f"your model ({r.kind})", params=r.params or 0,
        accuracy=None, train_seconds=None, epochs=None,
        note=f"{r.path}; input {r.input_dtype}{r.input_shape} from {r.input_source}; output {r.output_shape} "
             f"({r.output_kind}); not trained here"))


@source("manifest.json", "export", "artifacts")
def manifest(path: Path, res: ReportResults) -> list[results.NotRun]:
    from deploy_compare.models.exporters.base import Manifest

    m = results.load(Manifest, path)
    for a in m.artifacts:
        res.artifacts.append(ArtifactRow(key=a.key, twin=a.twin, format=a.format, variant=a.variant,
                                         framework=a.source_framework, bytes=a.bytes, export_seconds=a.export_seconds,
                                         converter=a.converter, compile_seconds=a.compile_seconds))
    return list(m.not_run)


@source("parity.json", "parity", "artifacts")
def parity(path: Path, res: ReportResults) -> list[results.NotRun]:
    from deploy_compare.models.parity import ParityReport

    report = results.load(ParityReport, path)
    by_key = {a.key: a for a in res.artifacts}
    for row in report.rows:
        art = by_key.get(row.artifact)
        if art is None:  # parity ran on an artifact the manifest no longer lists: show it, do not drop it
            art = ArtifactRow(key=row.artifact, twin=row.twin, format=row.format, variant=row.variant,
                              framework=row.source_framework, bytes=0, export_seconds=0.0,
                              parity_note="not in manifest.json")
            res.artifacts.append(art)
        f = row.figures
        if row.error or f is None:
            art.parity, art.parity_note = "fail", row.error or "no figures"
            continue
        art.max_abs_error, art.max_rel_error = f.max_abs_err, f.max_rel_err
        art.top1_agreement, art.accuracy = f.top1_agreement, f.accuracy
        art.parity = ("pass" if f.passed else "fail") if f.gated else "reported"
        art.parity_note = f.failure
    # manifest.json already contributed the exports that could not run; parity repeats them
    return []
