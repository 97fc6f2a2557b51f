"""PyTorch subjects: an exported program (`.pt2`), a TorchScript file (`.pt`), or `package.module:factory`
returning an `nn.Module` (with an optional state dict). The PyTorch exporters (TorchScript by trace, ONNX
by torch.export) take the module; the TensorFlow exporters cannot."""
from __future__ import annotations

import importlib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from deploy_compare.models.subjects.base import InputSpec, Subject, SubjectError
from deploy_compare.models.subjects.keras import first_output

NO_TF = "no converter from PyTorch to TensorFlow in this toolkit (the zoo's twins get one by weight transplant)"
TORCH_DTYPES = {"float32": "float32", "float64": "float64", "int64": "int64", "int32": "int32", "float16": "float16"}


class TorchSubject(Subject):
    """What every PyTorch kind shares: an eval-mode module, predictions under inference mode."""

    framework = "pytorch"
    module: Any

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return first_output(self.module(torch.from_numpy(np.ascontiguousarray(x))))

    def export_model(self, spec: InputSpec) -> object:
        return self.module

    def unreachable(self) -> dict[str, str]:
        return {"tensorflow": NO_TF}

    def params(self) -> int | None:
        return int(sum(p.numel() for p in self.module.parameters()))


def is_zip_with(target: str, member_suffix: str) -> bool:
    path = Path(target)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(name.endswith(member_suffix) for name in zf.namelist())


def tensor_spec(value: Any) -> InputSpec | None:
    """Per-sample shape and dtype of a (fake) tensor, when every dimension is a plain int."""
    shape = list(value.shape)[1:]
    if not all(isinstance(d, int) for d in shape):
        return None
    return InputSpec(shape=tuple(shape), dtype=str(value.dtype).removeprefix("torch."))


def load_factory(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SubjectError(f"--model {target}: cannot import {attr!r} from module {module_name!r} ({exc}); the module "
                           "must be importable from the current directory or PYTHONPATH") from exc
    return factory()
