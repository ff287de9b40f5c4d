"""Layers the model-zoo families share: conv + batch norm + activation, maxout, output sizes.

The 2015 FaceNet tables predate batch normalisation; the zoo puts BN (and no bias) after every
convolution because it is what lets the networks train at the tiny budgets harmony runs on a CPU.
BN adds 2 parameters per channel, under 0.5% of any zoo model (the tests count them in).
"""

from __future__ import annotations

import math

import torch
from torch import nn

Size = int | tuple[int, int]


def pair(size: Size | list[int]) -> tuple[int, int]:
    """(height, width) from an int or a 2-sequence (recipes write lists)."""
    if isinstance(size, int):
        return size, size
    h, w = (int(s) for s in size)
    return h, w


def scaled(channels: int, width: float) -> int:
    """A column of a paper table times a width multiplier (0 stays 0: a branch the table omits)."""
    return 0 if channels == 0 else max(1, round(channels * width))


def conv_out(n: int, k: int, s: int, p: int) -> int:
    """Output length of a convolution or pooling along one axis (floor mode)."""
    return (n + 2 * p - k) // s + 1


def halvings(n: int, times: int) -> int:
    """Output length after ``times`` stride-2 3x3 (padding 1) or 7x7 (padding 3) layers: ceil(n / 2) each."""
    for _ in range(times):
        n = math.ceil(n / 2)
    return n


class ConvBN(nn.Sequential):
    """k x k convolution (no bias) + BN + ReLU or PReLU, or no activation (``act=None``: a linear layer)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: str | None = "relu"):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(cout)]
        if act == "relu":
            layers.append(nn.ReLU(inplace=True))
        elif act == "prelu":
            layers.append(nn.PReLU(cout))
        elif act is not None:
            raise ValueError(f"act must be relu, prelu or None, got {act!r}")
        super().__init__(*layers)


class Maxout(nn.Module):
    """A fully connected maxout layer (Goodfellow et al. 2013): ``pieces`` linear units per output, max taken.

    FaceNet's NN1 fc1/fc2 ("maxout p=2", 32x128 outputs) are this with out_features=4096, pieces=2.
    """

    def __init__(self, in_features: int, out_features: int, pieces: int = 2):
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(x.shape[0], self.out_features, self.pieces).amax(dim=2)
