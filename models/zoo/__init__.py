"""The twin zoo: `get_twin(name)` returns a Twin (see base.py); one module per twin.

    mlp     digits-flat   (NF)    64-128-64-10 dense
    cnn     digits-image  (NHWC)  2 x (conv3x3 + maxpool) + 2 dense
    resnet  gratings32    (NHWC)  residual CNN with BatchNorm, 3 stages, global average pooling
    mobilenet   images224 (NHWC)  depthwise-separable CNN at 224x224x3 (~0.3 GFLOPs; untrained)
    transformer tokens128 (NF)    2-layer encoder over int64 token ids, sequence 128
"""
from __future__ import annotations

from deploy_compare.models.zoo import cnn, mlp, mobilenet, resnet, transformer  # noqa: F401  (register the twins)
from deploy_compare.models.zoo.base import TWINS, LayerPair, TransplantError, Twin, param_counts

__all__ = ["TWINS", "LayerPair", "Twin", "TransplantError", "get_twin", "param_counts", "twin_names"]


def get_twin(name: str) -> Twin:
    return TWINS.get(name)()


def twin_names() -> list[str]:
    return TWINS.names()
