"""An ONNX file: it is itself the ONNX artifact (copied into the run folder and inspected like an export);
onnxruntime computes the reference outputs. No exporter takes ONNX as its source in this toolkit."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from deploy_compare.models.exporters.base import ArtifactRecord, Exporter, ExportJob
from deploy_compare.models.subjects.base import SUBJECTS, InputSpec, Subject

NO_SOURCE = "no converter from ONNX to {framework} in this toolkit (onnx2tf / onnx2torch are not installed)"
ONNX_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
               "tensor(int32)": "int32", "tensor(float16)": "float16"}


class OnnxFileCopy(Exporter):
    """The user's ONNX file as the run's ONNX artifact (not registered: only the ONNX subject uses it)."""

    name = "onnx-file"
    format = "onnx"
    source_framework = "onnx"
    tools = ("onnx",)

    def export(self, job: ExportJob) -> list[ArtifactRecord]:
        started = time.perf_counter()
        out = job.out_dir / "onnx"
        out.mkdir(parents=True, exist_ok=True)
        path = out / "model.onnx"
        shutil.copyfile(str(job.model), path)
        return [self.record(job, path, "fp32", started, notes=f"the user's file {job.model}")]


@SUBJECTS.add
class OnnxSubject(Subject):
    name = "onnx"
    framework = ""
    description = "an ONNX file (.onnx)"
    suffix = ".onnx"

    def load(self) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(self.target, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            from deploy_compare.models.subjects.base import SubjectError

            raise SubjectError(f"ONNX file {self.target} has {len(inputs)} inputs; this toolkit measures models "
                               "with one input")
        self.input = inputs[0]

    def signature(self) -> InputSpec | None:
        shape = self.input.shape[1:]
        if not all(isinstance(d, int) for d in shape) or self.input.type not in ONNX_DTYPES:
            return None
        return InputSpec(shape=tuple(shape), dtype=ONNX_DTYPES[self.input.type])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input.name: x})[0], dtype=np.float32)

    def unreachable(self) -> dict[str, str]:
        return {fw: NO_SOURCE.format(framework=fw) for fw in ("tensorflow", "pytorch")}

    def own_artifacts(self, job: ExportJob) -> list[ArtifactRecord]:
        from dataclasses import replace

        return OnnxFileCopy().export(replace(job, model=Path(self.target).resolve()))
