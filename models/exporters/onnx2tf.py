"""`onnx2tf-savedmodel` and `onnx2tf-tflite`: the PyTorch twin's ONNX (`onnx_torch.write_onnx`) -> TensorFlow
SavedModel and TFLite with onnx2tf, in its own venv (onnx2tf 1.29 pins TensorFlow 2.19, numpy 1.26, onnx 1.19).

One conversion per twin gives both (onnx2tf writes the SavedModel and the float32/float16 .tflite together): it
is cached in the run folder (`cache/onnx2tf/<twin>/`), so the second exporter reuses the first's. onnx2tf turns a
channels-first image input into channels-last (NHWC): the record's layout is read from the converted input shape.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from deploy_compare.models.exporters.base import EXPORTERS, ArtifactRecord, ExportJob
from deploy_compare.models.exporters.converters import ConversionFailed, Converter
from deploy_compare.models.exporters.onnx_torch import write_onnx
from deploy_compare.models.venvs import VenvSpec

VENV = VenvSpec("onnx2tf", ("onnx2tf==1.29.24",))
VERSIONS_CODE = ("import importlib.metadata as m, json; print(json.dumps({d: m.version(d) for d in "
                 "('onnx2tf', 'tensorflow', 'onnx', 'numpy')}))")
DONE = "conversion.json"


def converted_layout(job: ExportJob, shape: list[int | None]) -> str:
    """The converted input's layout: the twin's own, or NHWC when onnx2tf moved the channels last."""
    dims = list(shape[1:])
    if dims == list(job.input_shape):
        return job.layout
    if job.layout == "NCHW" and dims == [*job.input_shape[1:], job.input_shape[0]]:
        return "NHWC"
    raise ConversionFailed(f"onnx2tf input shape {shape} is neither the twin's {list(job.input_shape)} "
                           f"({job.layout}) nor its channels-last form")


class Onnx2Tf(Converter):
    venv = VENV
    source_framework = "pytorch"
    tools = ()

    def conversion(self, job: ExportJob) -> tuple[Path, dict]:
        """The twin's onnx2tf output folder (converted now, or by the other onnx2tf exporter) and its record."""
        folder = job.run_root / "cache" / "onnx2tf" / job.twin
        if (folder / DONE).is_file():
            return folder, json.loads((folder / DONE).read_text())
        venv = self.environment(job)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        source = write_onnx(job, folder / "model.onnx")
        t0 = time.perf_counter()
        self.convert(venv, ["-m", "onnx2tf", "-i", str(source), "-o", str(folder / "out"), "-osd", "-n"], job)
        record = {"seconds": time.perf_counter() - t0, "versions": self.convert(venv, ["-c", VERSIONS_CODE], job),
                  "venv_cached": venv.cached, "venv_seconds": venv.created_seconds}
        (folder / DONE).write_text(json.dumps(record))
        return folder, record

    def notes(self, record: dict) -> str:
        return (f"onnx2tf on the torch.onnx (dynamo) export; conversion {record['seconds']:.1f} s; venv "
                f"{'cached' if record['venv_cached'] else 'created'} ({record['venv_seconds']:.0f} s to create)")


@EXPORTERS.add
class Onnx2TfSavedModel(Onnx2Tf):
    name = "onnx2tf-savedmodel"
    format = "savedmodel"

    def export(self, job: ExportJob) -> list[ArtifactRecord]:
        started = time.perf_counter()
        folder, record = self.conversion(job)
        out = job.out_dir / self.name / "saved_model"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(folder / "out", out, ignore=shutil.ignore_patterns("*.tflite"))
        rec = self.converted_record(job, out, "fp32", started, self.notes(record), record["versions"])
        rec.layout = converted_layout(job, rec.inputs[0].shape)
        return [rec]


@EXPORTERS.add
class Onnx2TfTFLite(Onnx2Tf):
    name = "onnx2tf-tflite"
    format = "tflite"

    def export(self, job: ExportJob) -> list[ArtifactRecord]:
        started = time.perf_counter()
        folder, record = self.conversion(job)
        out = job.out_dir / self.name
        out.mkdir(parents=True, exist_ok=True)
        records = []
        for variant, suffix in (("fp32", "float32"), ("fp16", "float16")):
            path = out / f"model_{suffix}.tflite"
            shutil.copyfile(folder / "out" / f"model_{suffix}.tflite", path)
            rec = self.converted_record(job, path, variant, started, self.notes(record), record["versions"])
            rec.layout = converted_layout(job, rec.inputs[0].shape)
            records.append(rec)
        return records
