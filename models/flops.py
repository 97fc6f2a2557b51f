"""FLOPs per inference (batch 1) of a PyTorch model, counted by `torch.utils.flop_counter.FlopCounterMode`
(it ships with torch: matmuls, convolutions and attention counted from the ops that run; a multiply-add is
2 FLOPs; element-wise ops such as ReLU, BatchNorm and softmax are not counted)."""
from __future__ import annotations

from typing import Any

import numpy as np


def count_flops(model: Any, sample: np.ndarray) -> int:
    """FLOPs of one forward pass of `model` on `sample` (one input row, with its batch axis).

    Counted on a copy in training mode without gradients: in eval mode nn.MultiheadAttention takes a fused
    fast path (`_native_multi_head_attention`) the counter does not see (it counted 8.4 of the transformer
    twin's ~25 MFLOPs); the copy keeps BatchNorm's running statistics of `model` untouched. Even so, torch
    2.13's counter on CPU does not count the fused scaled-dot-product attention (scores and weighted sum,
    4 L^2 d per layer: 8.4 of the transformer twin's 25.2 MFLOPs): its figure, 16.8 M, is a lower bound."""
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        copy.deepcopy(model).train()(torch.from_numpy(np.ascontiguousarray(sample[:1])))
    return int(counter.get_total_flops())
