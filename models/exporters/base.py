"""The exporter axis: `Exporter.export()` writes one artifact (or its variants) and returns manifest records.

An exporter receives an `ExportJob` (the trained model of its own framework, its per-sample input shape
and layout, and where to write) so it knows nothing about the zoo. The signature written into each
record (input/output names, shapes, dtypes) is read back from the written artifact by `deploy_compare.models.inspect`,
so the manifest states what the file really holds, dynamic batch included.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import ClassVar

import numpy as np

from deploy_compare.core.registry import Registry
from deploy_compare.core.results import NotRun

INPUT_NAME = "input"    # the one input of every exported artifact
OUTPUT_NAME = "logits"  # the one output of every exported artifact


@dataclass
class TensorSpec:
    name: str
    shape: list[int | None]  # None = dynamic (batch)
    dtype: str  # numpy dtype name, e.g. "float32"

    def shape_text(self) -> str:
        return "[" + ", ".join("batch" if d is None else str(d) for d in self.shape) + "]" if self.shape else "[?]"


@dataclass
class ArtifactRecord:
    twin: str
    format: str  # core.kinds.ArtifactFormat: savedmodel | tflite | torchscript | onnx | torch-export | aoti
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
    # ahead-of-time compiles (AOTInductor): the compile's seconds, and whether this export reused a cached
    # compile (then the seconds are the cached compile's)
    compile_seconds: float | None = None
    compile_cached: bool | None = None
    converter: str = ""  # cross-framework conversions: the converter (e.g. "onnx2tf 1.29.24"); "" = native

    def __post_init__(self) -> None:
        # artifacts are loaded only from the run's own folder: a manifest cannot point elsewhere
        parts = PurePosixPath(self.path).parts
        if not parts or PurePosixPath(self.path).is_absolute() or ".." in parts:
            raise ValueError(f"artifact {self.twin}/{self.exporter}/{self.variant}: path {self.path!r} must be "
                             "relative to the run folder and stay inside it")

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


@dataclass(frozen=True)
class ExportJob:
    """What one exporter needs for one twin: the model of its framework and where to write."""

    twin: str
    model: object  # a Keras model (tensorflow exporters) or an eval-mode torch.nn.Module (pytorch exporters)
    input_shape: tuple[int, ...]  # per-sample shape in `layout`
    layout: str  # NHWC | NCHW | NF
    out_dir: Path  # e.g. results/<run>/artifacts/<twin>/<format>/
    run_root: Path  # the run folder; record paths are relative to it
    input_dtype: str = "float32"  # numpy dtype name of the input (token ids: int64 / int32)
    sample: np.ndarray | None = None  # real inputs in `layout` for tracing (needed for integer ids: their range)

    def example(self, n: int, seed: int) -> np.ndarray:
        """`n` example inputs for tracing: rows of `sample` (cycled, shuffled by `seed`), else uniform [0, 1)
        floats; integer inputs without a sample are refused (their valid range is the model's)."""
        rng = np.random.default_rng(seed)
        if self.sample is not None:
            return np.ascontiguousarray(self.sample[rng.permutation(max(n, len(self.sample)))[:n] % len(self.sample)])
        if np.dtype(self.input_dtype).kind != "f":
            raise ValueError(f"{self.twin}: tracing an {self.input_dtype} input needs sample inputs (ExportJob.sample)")
        return rng.random((n, *self.input_shape), dtype=np.float32).astype(self.input_dtype)


def digest(path: Path) -> tuple[str, int]:
    """sha256 and size in bytes of a file, or of a directory (every file, in sorted relative-path order,
    its relative path hashed before its content)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"{path} is neither a file nor a folder holding files")
    h, total = hashlib.sha256(), 0
    for f in files:
        if path.is_dir():
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
                total += len(chunk)
    return h.hexdigest(), total


def versions(*distributions: str) -> dict[str, str]:
    return {d: importlib.metadata.version(d) for d in distributions}


class Exporter(ABC):
    """One export format from one source framework. Implementations import TF/torch lazily.

    `optional` exporters (a converter that may not support this TF version) do not fail the stage:
    their error is recorded as a `NotRun` in the manifest, with `enable_command`.
    """

    name: ClassVar[str]
    format: ClassVar[str]
    source_framework: ClassVar[str]
    tools: ClassVar[tuple[str, ...]]  # distributions whose versions go into every record
    optional: ClassVar[bool] = False
    enable_command: ClassVar[str] = ""

    @abstractmethod
    def export(self, job: ExportJob) -> list[ArtifactRecord]:
        """Write the artifact(s) for `job.model` under `job.out_dir`; return their records."""

    def record(self, job: ExportJob, path: Path, variant: str, started: float, notes: str = "") -> ArtifactRecord:
        """The manifest record of a written artifact; `started` is the perf_counter() at export start.
        Signature and dynamic batch are read back from the file itself."""
        from deploy_compare.models.inspect import inspect_artifact

        seconds = time.perf_counter() - started
        info = inspect_artifact(path)
        if info.format != self.format:
            raise RuntimeError(f"exporter {self.name} wrote {path}, detected as {info.format}, not {self.format}")
        return ArtifactRecord(
            twin=job.twin, format=self.format, variant=variant, source_framework=self.source_framework,
            exporter=self.name, path=Path(path).relative_to(job.run_root).as_posix(), sha256=info.sha256,
            bytes=info.bytes, inputs=info.inputs, outputs=info.outputs, layout=job.layout,
            dynamic_batch=all(spec.shape[0] is None for spec in info.inputs), export_seconds=round(seconds, 4),
            tool_versions=versions(*self.tools), notes=notes)


EXPORTERS: Registry[type[Exporter]] = Registry("exporter")

# One module per exporter; importing it registers it (the modules import TF/torch lazily).
IMPLEMENTATIONS = ("savedmodel", "tflite", "torchscript", "torch_export", "aoti", "onnx_torch", "onnx_tf",
                   "litert_torch", "onnx2tf")


def load_exporters() -> Registry[type[Exporter]]:
    for module in IMPLEMENTATIONS:
        importlib.import_module(f"deploy_compare.models.exporters.{module}")
    return EXPORTERS
