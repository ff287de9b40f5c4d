"""A small fast CNN for CPU runs, in the spirit of FaceNet's NNS2 (tiny, quick to train)."""

from __future__ import annotations

from torch import nn


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def small_cnn(widths: list[int] | tuple[int, ...] = (16, 32, 64, 64), in_channels: int = 3) -> tuple[nn.Module, int]:
    """Stages of two 3x3 convs + max-pool, then global average pooling: (B,3,H,W) -> (B, widths[-1])."""
    layers, cin = [], in_channels
    for w in widths:
        layers.append(_stage(cin, int(w)))
        cin = int(w)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), cin
