"""TorchScript through `torch.jit.load`, run under `torch.inference_mode()`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy_compare.core.kinds import ArtifactFormat, RuntimeFamily
from deploy_compare.models.runtimes.base import ArtifactRuntime, register_format
from deploy_compare.models.runtimes.threads import set_torch_threads


@register_format
class TorchScriptRuntime(ArtifactRuntime):
    name = "torchscript"
    framework = RuntimeFamily.PYTORCH
    format = ArtifactFormat.TORCHSCRIPT
    imports = ("torch",)
    cost_hint = 3.0
    eager = "torch-eager"

    def load(self, path: Path, threads: int) -> None:
        import torch

        self.threads = set_torch_threads(threads)
        self._torch = torch
        self._module = torch.jit.load(str(path), map_location="cpu").eval()

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self._module(self._torch.from_numpy(x)).numpy()
