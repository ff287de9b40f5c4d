"""MobileFaceNet (Chen et al. 2018, Table 1): a phone-sized face embedder, 112x112 input, under 1M parameters.

Rows (t expansion, c channels, n repeats, s stride of the first): conv3x3 64 s2; depthwise conv3x3
64; bottleneck t2 c64 n5 s2; bottleneck t4 c128 n1 s2; bottleneck t2 c128 n6 s1; bottleneck t4
c128 n1 s2; bottleneck t2 c128 n2 s1; conv1x1 512; linear GDConv7x7 (a 7x7 depthwise convolution
over the whole 7x7 map, no activation: the global depthwise convolution that replaces average
pooling, so each position gets its own learned weight); linear conv1x1 128 -> the Embedder's head
(a linear layer on the 1x1 map is the same thing). Bottlenecks are MobileNetV2's (1x1 expand,
3x3 depthwise, linear 1x1 project, a residual where stride is 1 and channels match) with PReLU;
every conv has batch norm. The paper reports 0.99M parameters and 221M multiply-adds.

``input_size`` sets the GDConv kernel to the last map's size (ceil(input / 16): 7 at 112, 4 at
64); a map of another size is first average-pooled to that kernel (a no-op at the set size), so a
recipe that sets ``input_size`` to its image size keeps GDConv global. ``width`` scales channels.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from harmony.models.layers import ConvBN, Size, halvings, pair, scaled

# (t, c, n, s) of Table 1's bottleneck rows
BOTTLENECKS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


class Bottleneck(nn.Module):
    """MobileNetV2's inverted residual with PReLU: 1x1 expand (t), 3x3 depthwise (stride s), linear 1x1."""

    def __init__(self, cin: int, cout: int, t: int, stride: int):
        super().__init__()
        mid = cin * t
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(ConvBN(cin, mid, 1, act="prelu"), ConvBN(mid, mid, 3, stride=stride, groups=mid, act="prelu"),
                                  ConvBN(mid, cout, 1, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class GDConv(nn.Sequential):
    """Linear global depthwise convolution: k x k depthwise conv over a k x k map, then BN (no activation)."""

    def __init__(self, channels: int, kernel: tuple[int, int]):
        super().__init__(nn.AdaptiveAvgPool2d(kernel),
                         nn.Conv2d(channels, channels, kernel, groups=channels, bias=False), nn.BatchNorm2d(channels),
                         nn.Flatten())


def mobilefacenet(input_size: Size = 112, width: float = 1.0) -> tuple[nn.Module, int]:
    """(B, 3, H, W) -> (B, 512 * width): MobileFaceNet up to its GDConv."""
    w = lambda c: scaled(c, width)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["conv1"] = ConvBN(3, w(64), 3, stride=2, act="prelu")
    layers["dwconv1"] = ConvBN(w(64), w(64), 3, groups=w(64), act="prelu")
    cin = w(64)
    for i, (t, c, n, s) in enumerate(BOTTLENECKS, start=1):
        blocks = [Bottleneck(cin if j == 0 else w(c), w(c), t, s if j == 0 else 1) for j in range(n)]
        layers[f"bottleneck{i}"] = nn.Sequential(*blocks)
        cin = w(c)
    layers["conv2"] = ConvBN(cin, w(512), 1, act="prelu")
    kernel = tuple(halvings(n, 4) for n in pair(input_size))
    layers["gdconv"] = GDConv(w(512), kernel)  # type: ignore[arg-type]
    return nn.Sequential(layers), w(512)
