"""TFLite through LiteRT (`ai_edge_litert.interpreter.Interpreter`) with the XNNPACK delegate on.

The artifacts have a dynamic batch (`shape_signature` -1): the input is resized, and tensors
re-allocated, only when the batch size changes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy_compare.core.kinds import ArtifactFormat, RuntimeFamily
from deploy_compare.models.runtimes.base import ArtifactRuntime, register_format


@register_format
class TFLiteRuntime(ArtifactRuntime):
    name = "tflite"
    framework = RuntimeFamily.LITERT
    format = ArtifactFormat.TFLITE
    imports = ("ai_edge_litert.interpreter",)

    def load(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        # BUILTIN applies LiteRT's default delegate, XNNPACK, on CPU (BUILTIN_WITHOUT_DEFAULT_DELEGATES would not)
        self._interp = Interpreter(model_path=str(path), num_threads=threads,
                                   experimental_op_resolver_type=OpResolverType.BUILTIN)
        self.threads = {"litert_num_threads": threads}
        (inp,), (out,) = self._interp.get_input_details(), self._interp.get_output_details()
        self._in, self._out = inp["index"], out["index"]
        self._shape: tuple[int, ...] = ()

    def predict(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self._shape:
            self._interp.resize_tensor_input(self._in, x.shape, strict=True)
            self._interp.allocate_tensors()
            self._shape = x.shape
        self._interp.set_tensor(self._in, x)
        self._interp.invoke()
        return self._interp.get_tensor(self._out)
