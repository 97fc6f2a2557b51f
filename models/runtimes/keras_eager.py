"""`keras-eager`: the trained Keras reference model called eagerly, `model(x, training=False)`."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deploy_compare.core.kinds import RuntimeFamily
from deploy_compare.models.runtimes.base import RUNTIMES
from deploy_compare.models.runtimes.threads import set_tensorflow_threads
from deploy_compare.models.runtimes.trained import TwinRuntime, load_keras


@RUNTIMES.add
class KerasEager(TwinRuntime):
    name = "keras-eager"
    framework = RuntimeFamily.TENSORFLOW
    graph = False
    imports = ("tensorflow", "keras")
    cost_hint = 2.0  # slow per call: its windows take longest to fill

    def __init__(self) -> None:
        super().__init__()
        self._call: Callable[[np.ndarray], Any] | None = None

    def load(self, path: Path, threads: int) -> None:
        self.threads = set_tensorflow_threads(threads)
        twin, model = load_keras(path)
        self._layout = twin.keras_layout
        self._call = self._wrap(model, twin.input_shape, twin.input_dtype)

    def _wrap(self, model: Any, input_shape: tuple[int, ...], dtype: str) -> Callable[[np.ndarray], Any]:
        return lambda x: model(x, training=False)

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self._call is None:
            raise RuntimeError(f"{self.name}: predict() before load()")
        return self._call(x).numpy()
