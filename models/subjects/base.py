"""The subject axis: a user's own model, read by its kind, in place of the zoo's trained twins.

A `Subject` knows one kind of model file (`claims(target)`), loads it, states the input its signature
declares (if it has one), computes the reference outputs, and hands the exporters of its framework the
model to export (`export_model`). What it cannot feed (another framework's exporters) it says with the
reason (`unreachable`). A kind whose file is itself an artifact (ONNX) writes that artifact
(`own_artifacts`). One module per kind; `SUBJECTS` is keyed by kind, in detection order.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from deploy_compare.core.errors import UserError
from deploy_compare.core.registry import Registry

if TYPE_CHECKING:
    from deploy_compare.core.config import ModelOptions
    from deploy_compare.models.exporters.base import ArtifactRecord, ExportJob


class SubjectError(UserError):
    """The user's model cannot be used: the message says what, where and what to do (printed as one
    paragraph, no traceback: `deploy-compare` exits 2)."""


@dataclass(frozen=True)
class InputSpec:
    shape: tuple[int, ...]  # per sample, without the batch axis
    dtype: str  # numpy dtype name

    def text(self) -> str:
        return f"{self.dtype}[batch, {', '.join(map(str, self.shape))}]"


@dataclass
class SubjectRecord:
    """What the model stage learnt about a user's model (`subject.json`)."""

    name: str
    kind: str
    path: str  # as given (a file, a folder, or module:factory)
    state_dict: str  # module:factory: the state dict loaded into it ("" for none)
    input_shape: list[int]
    input_dtype: str
    input_source: str  # "the model's signature" | "--input-shape/--input-dtype" | "--sample FILE"
    output_shape: list[int]  # per sample
    output_kind: str
    sample_origin: str  # the user's sample file, or seeded random inputs
    samples: int
    framework: str  # the exporters' source framework it feeds ("" when none: an ONNX file)
    unreachable: dict[str, str] = field(default_factory=dict)  # framework -> why its exporters cannot take it
    params: int | None = None
    load_seconds: float = 0.0
    reference_seconds: float = 0.0  # the reference outputs on the whole batch


class Subject(ABC):
    name: ClassVar[str]  # the model kind
    framework: ClassVar[str]  # the exporters it feeds (tensorflow | pytorch), "" for none
    description: ClassVar[str]  # what the user passes, for the help and the error messages

    def __init__(self, options: ModelOptions) -> None:
        self.options = options
        self.target = options.path

    suffix: ClassVar[str] = ""  # a single-file kind's file suffix: `claims` then needs no override

    @classmethod
    def claims(cls, target: str) -> bool:
        """Whether `target` (a path, or module:factory) is a model of this kind: by default an existing file
        ending in `suffix`; kinds that are folders, zips or factories override it."""
        if not cls.suffix:
            raise NotImplementedError(f"{cls.__name__} declares neither `suffix` nor its own `claims`")
        return target.endswith(cls.suffix) and Path(target).is_file()

    @abstractmethod
    def load(self) -> None:
        """Load the model (raises with the file named)."""

    def signature(self) -> InputSpec | None:
        """The input the model itself declares (batch axis dropped), or None when it declares none."""
        return None

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """The reference outputs for a batch `x` (one output: the first, where the model has several)."""

    def export_model(self, spec: InputSpec) -> object:
        """The model the exporters of `framework` take (a Keras model, or an eval-mode torch.nn.Module), for
        inputs of `spec` (the resolved input)."""
        raise NotImplementedError(f"{self.kind} feeds no exporter")

    def unreachable(self) -> dict[str, str]:
        """framework -> why that framework's exporters cannot take this model."""
        return {}

    def own_artifacts(self, job: ExportJob) -> list[ArtifactRecord]:
        """Artifacts the model file itself is (copied into the run folder under `job.out_dir`)."""
        return []

    def params(self) -> int | None:
        return None

    def default_name(self) -> str:
        return Path(self.target.split(":")[-1]).stem if ":" in self.target else Path(self.target.rstrip("/")).stem


SUBJECTS: Registry[type[Subject]] = Registry("model kind")


def open_subject(options: ModelOptions) -> Subject:
    """The subject of the first kind that claims `options.path`."""
    from deploy_compare.models.subjects import load_kinds

    for _, cls in load_kinds().items():
        if cls.claims(options.path):
            return cls(options)
    kinds = "; ".join(f"{cls.name}: {cls.description}" for _, cls in SUBJECTS.items())
    raise SubjectError(f"--model {options.path}: not a model this toolkit reads (or it does not exist). "
                       f"It reads: {kinds}")
