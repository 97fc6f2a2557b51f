"""PyTorch building blocks of the computing twins (`mobilenet`, `transformer`); torch imported at top, so
this module is imported lazily by their `build_torch`."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from deploy_compare.models.zoo.base import BN_EPSILON, BN_MOMENTUM_TORCH, LN_EPSILON


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPSILON, momentum=BN_MOMENTUM_TORCH)


def _conv(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    """Keras `padding="same"`: symmetric for stride 1; for stride 2 on even sizes, one extra row/column at the
    bottom/right only (ZeroPad2d + padding 0)."""
    pad = nn.ZeroPad2d((0, 1, 0, 1)) if stride == 2 else nn.Identity()
    return nn.Sequential(OrderedDict(pad=pad, conv=nn.Conv2d(c_in, c_out, kernel, stride=stride,
                                                              padding=kernel // 2 if stride == 1 else 0,
                                                              groups=groups, bias=False)))


class MobileNet(nn.Module):
    """Stem conv3x3/2 + BN + ReLU, depthwise-separable blocks (dw3x3 + BN + ReLU + pw1x1 + BN + ReLU), global
    average pooling, linear head. Input NCHW, output logits."""

    def __init__(self, in_channels: int, stem: int, blocks: list[tuple[str, int, int, int]], num_classes: int):
        super().__init__()
        self.stem = _conv(in_channels, stem, 3, 2)
        self.stem_bn = _bn(stem)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for name, c_in, c_out, stride in blocks:
            layers[f"{name}_dw"] = _conv(c_in, c_in, 3, stride, groups=c_in)
            layers[f"{name}_dw_bn"] = _bn(c_in)
            layers[f"{name}_dw_relu"] = nn.ReLU()
            layers[f"{name}_pw"] = nn.Conv2d(c_in, c_out, 1, bias=False)
            layers[f"{name}_pw_bn"] = _bn(c_out)
            layers[f"{name}_pw_relu"] = nn.ReLU()
        self.blocks = nn.Sequential(layers)
        self.fc = nn.Linear(blocks[-1][2], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem_bn(self.stem(x)))
        return self.fc(torch.mean(self.blocks(x), dim=(2, 3)))


class EncoderLayer(nn.Module):
    """Post-norm encoder layer as the Keras twin builds it: x = LN(x + MHA(x)); x = LN(x + MLP(x))."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln1 = nn.LayerNorm(dim, eps=LN_EPSILON)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.ln2 = nn.LayerNorm(dim, eps=LN_EPSILON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.attn(x, x, x, need_weights=False)[0])
        return self.ln2(x + self.fc2(torch.relu(self.fc1(x))))


class Encoder(nn.Module):
    """Token + learned position embeddings, encoder layers, mean over positions, linear head."""

    def __init__(self, vocab: int, seq: int, dim: int, heads: int, hidden: int, layers: int, num_classes: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Embedding(seq, dim)
        self.layers = nn.Sequential(OrderedDict((f"layer{i}", EncoderLayer(dim, heads, hidden))
                                                for i in range(1, layers + 1)))
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tokens(ids) + self.positions.weight
        return self.fc(torch.mean(self.layers(x), dim=1))
