"""`null`: returns a constant array of the right shape without computing anything.

Measured like every runtime, it shows the harness's own overhead per call (the loop, the clock, the
slice), in the spirit of MLPerf's null backend. `load` takes a trained-twin folder only to learn the
number of classes; it touches no framework.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy_compare.core.kinds import RuntimeFamily
from deploy_compare.models.runtimes.base import RUNTIMES, Capabilities, Runtime
from deploy_compare.models.runtimes.trained import twin_at


@RUNTIMES.add
class NullRuntime(Runtime):
    name = "null"
    framework = RuntimeFamily.NONE
    imports = ()

    def __init__(self) -> None:
        self._out = np.zeros((0, 0), dtype=np.float32)
        self.threads: dict[str, int] = {}
        self.details: dict[str, float | str] = {}

    def capabilities(self) -> Capabilities:
        return Capabilities(layout="any", dynamic_batch=True, graph=False)

    def load(self, path: Path, threads: int) -> None:
        _, twin = twin_at(path)
        self._out = np.zeros((1, twin.num_classes), dtype=np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self._out.shape[1] == 0:
            raise RuntimeError(f"{self.name}: predict() before load()")
        if len(x) > len(self._out):
            self._out = np.zeros((len(x), self._out.shape[1]), dtype=np.float32)
        return self._out[: len(x)]
