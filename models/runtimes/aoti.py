"""`aoti`: an AOTInductor package through `torch._inductor.aoti_load_package` (loads the compiled shared library;
nothing compiles at load or at the first call: the compile happened at export, `models/exporters/aoti.py`).

The compiled code reads its input by the strides it was compiled for (row-major), without checking them
(unless AOTI_RUNTIME_CHECK_INPUTS=1). A NumPy array can be C-contiguous by NumPy's rule and still carry
other strides on its size-1 dimensions: the cnn's held-out batch moved from NHWC to NCHW (1 channel) is such
a view, and the cnn package then answered it with a max abs error of 5.6 (15.6% top-1 agreement) where eager
and torch.export were exact. `predict` therefore hands over row-major strides in every dimension (a copy only
when the strides differ).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy_compare.core.kinds import ArtifactFormat, RuntimeFamily
from deploy_compare.models.runtimes.base import ArtifactRuntime, register_format
from deploy_compare.models.runtimes.threads import set_torch_threads


@register_format
class AotiRuntime(ArtifactRuntime):
    name = "aoti"
    framework = RuntimeFamily.PYTORCH
    format = ArtifactFormat.AOTI
    imports = ("torch",)
    cost_hint = 4.0
    eager = "torch-eager"
    enable_command = "apt-get install -y g++  # AOTInductor compiles C++ at export"

    def load(self, path: Path, threads: int) -> None:
        import torch
        import torch._inductor

        self.threads = set_torch_threads(threads)
        self._torch = torch
        self._model = torch._inductor.aoti_load_package(str(path))
        self.details = {"compiled": "ahead of time, at export (models/exporters/aoti.py)"}

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self._model(self._torch.from_numpy(row_major(x))).numpy()


def row_major(x: np.ndarray) -> np.ndarray:
    """`x` with row-major strides in every dimension, size-1 ones included (copied only when needed)."""
    strides, step = [], x.itemsize
    for size in reversed(x.shape):
        strides.append(step)
        step *= size
    return x if x.strides == tuple(reversed(strides)) else np.array(x, order="C", copy=True)
