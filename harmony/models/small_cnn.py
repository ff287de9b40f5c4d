"""A small fast CNN for CPU runs, in the spirit of FaceNet's NNS2 (tiny, quick to train)."""

from __future__ import annotations

from torch import nn


def _conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def small_cnn(widths: list[int] | tuple[int, ...] = (16, 32, 64, 64), in_channels: int = 3,
              stem_stride: int = 1) -> tuple[nn.Module, int]:
    """Stages of two 3x3 convs + max-pool, then global average pooling: (B,3,H,W) -> (B, widths[-1]).

    ``stem_stride=2`` makes the first conv strided: the first stage then runs at half resolution,
    which cuts the cost of a 64 px step about threefold.
    """
    if stem_stride not in (1, 2):
        raise TypeError(f"stem_stride must be 1 or 2, got {stem_stride}")
    layers: list[nn.Module] = []
    cin = in_channels
    for i, w in enumerate(int(w) for w in widths):
        layers.append(nn.Sequential(*_conv(cin, w, stem_stride if i == 0 else 1), *_conv(w, w), nn.MaxPool2d(2)))
        cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), cin
