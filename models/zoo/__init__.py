"""The twin zoo: `get_twin(name)` returns a Twin (see base.py); one module per twin.

    mlp     digits-flat   (NF)    64-128-64-10 dense
    cnn     digits-image  (NHWC)  2 x (conv3x3 + maxpool) + 2 dense
    resnet  gratings32    (NHWC)  residual CNN with BatchNorm, 3 stages, global average pooling
"""
from __future__ import annotations

from models.zoo import cnn, mlp, resnet  # noqa: F401  (register the twins)
from models.zoo.base import TWINS, LayerPair, TransplantError, Twin, param_counts

__all__ = ["TWINS", "LayerPair", "Twin", "TransplantError", "get_twin", "param_counts", "twin_names"]


def get_twin(name: str) -> Twin:
    return TWINS.get(name)()


def twin_names() -> list[str]:
    return TWINS.names()
