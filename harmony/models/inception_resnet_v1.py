"""Inception-ResNet-v1 (Szegedy et al. 2016), the backbone of the common FaceNet reimplementation.

Input 160 x 160 RGB; output the 1,792-D pooled feature (the embedding head is separate).
"""

from __future__ import annotations

import torch
from torch import nn


class Conv(nn.Sequential):
    def __init__(self, cin: int, cout: int, k, stride=1, padding=0):
        super().__init__(
            nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1),
            nn.ReLU(inplace=True),
        )


class Block35(nn.Module):
    def __init__(self, scale: float = 0.17):
        super().__init__()
        self.scale = scale
        self.b0 = Conv(256, 32, 1)
        self.b1 = nn.Sequential(Conv(256, 32, 1), Conv(32, 32, 3, padding=1))
        self.b2 = nn.Sequential(Conv(256, 32, 1), Conv(32, 32, 3, padding=1), Conv(32, 32, 3, padding=1))
        self.up = nn.Conv2d(96, 256, 1)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(torch.cat([self.b0(x), self.b1(x), self.b2(x)], 1))
        return self.relu(x + self.scale * y)


class Block17(nn.Module):
    def __init__(self, scale: float = 0.10):
        super().__init__()
        self.scale = scale
        self.b0 = Conv(896, 128, 1)
        self.b1 = nn.Sequential(Conv(896, 128, 1), Conv(128, 128, (1, 7), padding=(0, 3)), Conv(128, 128, (7, 1), padding=(3, 0)))
        self.up = nn.Conv2d(256, 896, 1)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(torch.cat([self.b0(x), self.b1(x)], 1))
        return self.relu(x + self.scale * y)


class Block8(nn.Module):
    def __init__(self, scale: float = 0.20, relu: bool = True):
        super().__init__()
        self.scale = scale
        self.b0 = Conv(1792, 192, 1)
        self.b1 = nn.Sequential(Conv(1792, 192, 1), Conv(192, 192, (1, 3), padding=(0, 1)), Conv(192, 192, (3, 1), padding=(1, 0)))
        self.up = nn.Conv2d(384, 1792, 1)
        self.relu = nn.ReLU(inplace=False) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(torch.cat([self.b0(x), self.b1(x)], 1))
        return self.relu(x + self.scale * y)


class Mixed6a(nn.Module):
    def __init__(self):
        super().__init__()
        self.b0 = Conv(256, 384, 3, stride=2)
        self.b1 = nn.Sequential(Conv(256, 192, 1), Conv(192, 192, 3, padding=1), Conv(192, 256, 3, stride=2))
        self.b2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1(x), self.b2(x)], 1)


class Mixed7a(nn.Module):
    def __init__(self):
        super().__init__()
        self.b0 = nn.Sequential(Conv(896, 256, 1), Conv(256, 384, 3, stride=2))
        self.b1 = nn.Sequential(Conv(896, 256, 1), Conv(256, 256, 3, stride=2))
        self.b2 = nn.Sequential(Conv(896, 256, 1), Conv(256, 256, 3, padding=1), Conv(256, 256, 3, stride=2))
        self.b3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], 1)


def inception_resnet_v1(dropout: float = 0.2, blocks: tuple[int, int, int] = (5, 10, 5)) -> tuple[nn.Module, int]:
    """The full network has (5, 10, 5) repeats; fewer make a cheaper variant for tests."""
    n35, n17, n8 = blocks
    net = nn.Sequential(
        Conv(3, 32, 3, stride=2), Conv(32, 32, 3), Conv(32, 64, 3, padding=1), nn.MaxPool2d(3, stride=2),
        Conv(64, 80, 1), Conv(80, 192, 3), Conv(192, 256, 3, stride=2),
        *[Block35() for _ in range(n35)], Mixed6a(),
        *[Block17() for _ in range(n17)], Mixed7a(),
        *[Block8() for _ in range(max(n8 - 1, 0))], Block8(relu=False),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
    )
    return net, 1792
