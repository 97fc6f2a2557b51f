"""PyTorch building blocks of the twins that need more than nn.Sequential (imported lazily: torch at top)."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from deploy_compare.models.zoo.base import BN_EPSILON, BN_MOMENTUM_TORCH


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPSILON, momentum=BN_MOMENTUM_TORCH)


class ResidualBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _bn(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = _bn(c_out)
        self.project = stride != 1 or c_in != c_out
        if self.project:
            self.proj = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            self.proj_bn = _bn(c_out)
        else:
            self.proj = nn.Identity()
            self.proj_bn = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.proj_bn(self.proj(x)))


class ResNet(nn.Module):
    """Stem conv + residual blocks + global average pooling + linear head. Input NCHW, output logits."""

    def __init__(self, in_channels: int, stem_width: int, blocks: list[tuple[str, int, int, int]],
                 num_classes: int) -> None:
        super().__init__()
        self.stem_conv = nn.Conv2d(in_channels, stem_width, 3, padding=1, bias=False)
        self.stem_bn = _bn(stem_width)
        self.blocks = nn.Sequential(OrderedDict(
            (name, ResidualBlock(c_in, c_out, stride)) for name, c_in, c_out, stride in blocks))
        self.fc = nn.Linear(blocks[-1][2], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem_bn(self.stem_conv(x)))
        x = self.blocks(x)
        return self.fc(torch.mean(x, dim=(2, 3)))
