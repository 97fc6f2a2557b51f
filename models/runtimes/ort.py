"""ONNX through onnxruntime: CPU execution provider, `intra_op_num_threads` set, sequential execution."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy_compare.core.kinds import ArtifactFormat, RuntimeFamily
from deploy_compare.models.runtimes.base import ArtifactRuntime, register_format


@register_format
class OnnxRuntime(ArtifactRuntime):
    name = "onnxruntime"
    framework = RuntimeFamily.ONNXRUNTIME
    format = ArtifactFormat.ONNX
    imports = ("onnxruntime",)

    def load(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.threads = {"ort_intra_op_threads": threads, "ort_inter_op_threads": 1}
        (inp,), (out,) = self._session.get_inputs(), self._session.get_outputs()
        self._in, self._outputs = inp.name, [out.name]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(self._outputs, {self._in: x})[0]
