"""The runtime axis: `Runtime.load()` then `Runtime.predict()`. One module per runtime.

A runtime declares its capabilities (input layout, dynamic batch, dtypes, graph or eager) so that
callers convert inputs by capability, never by testing names. Runtimes import TensorFlow/PyTorch
lazily inside `load`. The same runtimes serve the parity gate (issue 2) and the floor (issue 3).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from core.registry import Registry

if TYPE_CHECKING:
    from models.exporters.base import ArtifactRecord


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


class ArtifactRuntime(Runtime):
    """A runtime for an exported artifact: its layout and dynamic batch come from the artifact's record."""

    format: ClassVar[str]  # the artifact format it loads (savedmodel | tflite | torchscript | onnx)

    def __init__(self, layout: str, dynamic_batch: bool = True) -> None:
        self._caps = Capabilities(layout=layout, dynamic_batch=dynamic_batch)

    def capabilities(self) -> Capabilities:
        return self._caps


# artifact format -> name of the runtime that loads it (filled by @register_format on the implementations)
FORMAT_RUNTIMES: Registry[str] = Registry("artifact format")

# One module per runtime under models/runtimes/; importing registers it (TF/torch are imported in load()).
IMPLEMENTATIONS = ["savedmodel", "tflite", "torchscript", "ort"]


def register_format(cls: type[ArtifactRuntime]) -> type[ArtifactRuntime]:
    RUNTIMES.add(cls)
    FORMAT_RUNTIMES.register(cls.format)(cls.name)
    return cls


def load_runtimes() -> Registry[type[Runtime]]:
    import importlib

    for module in IMPLEMENTATIONS:
        importlib.import_module(f"models.runtimes.{module}")
    return RUNTIMES


def runtime_for(record: ArtifactRecord) -> ArtifactRuntime:
    """An unloaded runtime for an artifact, chosen by the artifact's format."""
    load_runtimes()
    cls = RUNTIMES.get(FORMAT_RUNTIMES.get(record.format))
    return cls(layout=record.layout, dynamic_batch=record.dynamic_batch)


def open_artifact(record: ArtifactRecord, run_root: Path, threads: int) -> ArtifactRuntime:
    """Runtime for `record`, loaded from `run_root / record.path` with `threads` intra-op threads."""
    runtime = runtime_for(record)
    runtime.load(Path(run_root) / record.path, threads)
    return runtime
