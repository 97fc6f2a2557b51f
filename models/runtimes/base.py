"""The runtime axis: `Runtime.load()` then `Runtime.predict()`. One module per runtime.

A runtime declares its capabilities (input layout, dynamic batch, dtypes, graph or eager) so that
callers convert inputs by capability, never by testing names. Runtimes import TensorFlow/PyTorch
lazily inside `load`. The same runtimes serve the parity gate (issue 2) and the floor (issue 3).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from deploy_compare.registry import Registry


@dataclass(frozen=True)
class Capabilities:
    layout: str  # NHWC | NCHW | NF, or "any" when it follows the artifact
    dynamic_batch: bool
    dtypes: tuple[str, ...] = ("float32",)
    graph: bool = True  # False for eager execution


class Runtime(ABC):
    name: ClassVar[str]
    framework: ClassVar[str]  # tensorflow | pytorch | onnxruntime | litert | pytensor | none

    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abstractmethod
    def load(self, path: Path, threads: int) -> None:
        """Load the artifact (or trained weights) at `path`, with `threads` intra-op threads."""

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits for a batch `x` already in `capabilities().layout`."""


RUNTIMES: Registry[type[Runtime]] = Registry("runtime")
