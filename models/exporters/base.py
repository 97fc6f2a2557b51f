"""The exporter axis: `Exporter.export()` writes one artifact and returns its manifest record."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from deploy_compare.registry import Registry
from deploy_compare.results import NotRun


@dataclass
class TensorSpec:
    name: str
    shape: list[int | None]  # None = dynamic (batch)
    dtype: str  # numpy dtype name, e.g. "float32"


@dataclass
class ArtifactRecord:
    twin: str
    format: str  # savedmodel | tflite | torchscript | onnx
    variant: str  # fp32 | int8-dynamic | fp16
    source_framework: str  # tensorflow | pytorch
    exporter: str  # registry name of the exporter
    path: str  # relative to the run folder
    sha256: str
    bytes: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    layout: str  # input layout: NHWC | NCHW | NF (flat features)
    dynamic_batch: bool
    export_seconds: float
    tool_versions: dict[str, str] = field(default_factory=dict)
    notes: str = ""

    @property
    def key(self) -> str:
        return f"{self.twin}/{self.exporter}/{self.variant}"

    @property
    def quantized(self) -> bool:
        return self.variant != "fp32"


@dataclass
class Manifest:
    run_id: str
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    not_run: list[NotRun] = field(default_factory=list)

    def find(self, twin: str, fmt: str, variant: str = "fp32", framework: str | None = None) -> ArtifactRecord:
        for rec in self.artifacts:
            if rec.twin == twin and rec.format == fmt and rec.variant == variant and (
                    framework is None or rec.source_framework == framework):
                return rec
        raise KeyError(f"no {fmt}/{variant} artifact of twin {twin!r} in the manifest")


class Exporter(ABC):
    """One export format (and source framework). Implementations import TF/torch lazily."""

    name: ClassVar[str]
    format: ClassVar[str]
    source_framework: ClassVar[str]

    @abstractmethod
    def export(self, twin: str, model: object, out_dir: Path, run_dir: Path) -> list[ArtifactRecord]:
        """Write the artifact(s) for `model` under `out_dir`; return their records (paths relative to run_dir)."""


EXPORTERS: Registry[type[Exporter]] = Registry("exporter")
