"""`torch-export`: a saved ExportedProgram through `torch.export.load(...).module()`, under `torch.inference_mode()`.

The module runs the exported ATen graph in Python (no compile): it is the graph counterpart of `torch-eager`
in the Computational-graph row.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy_compare.core.kinds import ArtifactFormat, RuntimeFamily
from deploy_compare.models.runtimes.base import ArtifactRuntime, register_format
from deploy_compare.models.runtimes.threads import set_torch_threads


@register_format
class TorchExportRuntime(ArtifactRuntime):
    name = "torch-export"
    framework = RuntimeFamily.PYTORCH
    format = ArtifactFormat.TORCH_EXPORT
    imports = ("torch",)
    cost_hint = 4.0
    eager = "torch-eager"

    def load(self, path: Path, threads: int) -> None:
        import torch

        self.threads = set_torch_threads(threads)
        self._torch = torch
        self._module = torch.export.load(str(path)).module()

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self._module(self._torch.from_numpy(x)).numpy()
