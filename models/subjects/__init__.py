"""A user's model as the pipeline's subject (`deploy-compare run --model`): see base.py; one module per kind."""
from __future__ import annotations

import importlib

from deploy_compare.core.registry import Registry

# detection order: the first kind whose `claims` accepts the target reads it
KINDS = ("keras", "savedmodel", "torch_program", "torchscript", "torch_factory", "onnx")


def load_kinds() -> Registry:
    from deploy_compare.models.subjects.base import SUBJECTS

    for module in KINDS:
        importlib.import_module(f"deploy_compare.models.subjects.{module}")
    return SUBJECTS
