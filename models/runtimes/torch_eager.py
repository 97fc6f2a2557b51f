"""`torch-eager`: the PyTorch twin (transplanted Keras weights) as an `nn.Module` under `torch.inference_mode`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deploy_compare.core.kinds import RuntimeFamily
from deploy_compare.models.runtimes.base import RUNTIMES
from deploy_compare.models.runtimes.threads import set_torch_threads
from deploy_compare.models.runtimes.trained import TwinRuntime, load_torch


@RUNTIMES.add
class TorchEager(TwinRuntime):
    name = "torch-eager"
    framework = RuntimeFamily.PYTORCH
    graph = False
    imports = ("torch",)
    cost_hint = 3.0

    def __init__(self) -> None:
        super().__init__()
        self._model: Any = None

    def load(self, path: Path, threads: int) -> None:
        self.threads = set_torch_threads(threads)
        twin, model = load_torch(path)
        self._layout = twin.torch_layout
        self._model = self._wrap(model)

    def _wrap(self, model: Any) -> Any:
        return model

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        if self._model is None:
            raise RuntimeError(f"{self.name}: predict() before load()")
        with torch.inference_mode():
            return self._model(torch.from_numpy(x)).numpy()
