"""FaceNet's Inception models (Schroff et al. 2015): NN2 (Table 2), NN3, NN4, and NNS1/NNS2.

NN2, 224x224, as Table 2 row by row: conv1 7x7 s2 64; max pool + norm; inception (2) (1x1 64 ->
3x3 192); norm + max pool; inception (3a)...(5b) with the table's #1x1, #3x3 reduce, #3x3, #5x5
reduce, #5x5 and pool proj columns, its pooling per row (``m`` 3x3 max, ``L2`` 3x3 L2 pooling,
``nn.LPPool2d(2, 3)`` on a zero-padded map so the size is kept), stride 2 in (3c) and (4e) (whose
pool branch passes its input on unprojected, so 256+64+320 = 640 and 256+128+640 = 1024); average
pool; the table's "fully conn" 1024 -> 128 and L2 are the Embedder's head. Table 2 gives 7.5M
parameters and 1.6B FLOPS; norm is local response normalisation (size 5, as GoogLeNet).

NN3 is NN2 at 160x160 (the same network; global pooling takes any size). NN4 is NN2 at 96x96
"without 5x5 convolutions in the higher layers": the paper does not say which layers. Here the 5x5
branch is dropped in (4e), (5a) and (5b), the layers whose output is 3x3 at 96 px, where a 5x5
kernel is wider than the map; that measures 284.7M multiply-adds against the paper's 285M (dropping
it in (4a)-(5b) as well would give about 276M), so (4e) outputs 256 + 640 and (5a)/(5b) 384 + 384 + 128 = 896 channels.

NNS1 ("mini Inception", 165x165, 26M parameters, 220M FLOPS) and NNS2 ("tiny Inception", 140x116,
4.3M parameters, 20M FLOPS): the paper gives only these totals. Reconstructed here, not taken
from it: a fully connected layer costs one multiply-add per parameter per image and a convolution
many, so 26M parameters at 220M multiply-adds (and 4.3M at 20M) leave most parameters in fully
connected layers. Each is therefore NN2's Inception trunk with every column scaled by ``width``
(NNS1 7/16, NNS2 0.14), its last map average-pooled to a 3x3 grid, and two NN1-style maxout
layers (p=2) of ``fc_units`` units (NNS1 2048 = 16x128, NNS2 896 = 7x128) before the 128-D head.
Width and units came from a grid search (width in steps of about 1/80, units in steps of 64) for
the smallest worst relative error against the paper's two totals at its input sizes: measured
26.6M / 225M (NNS1) and 4.19M / 19.6M (NNS2), within 2.5% of each; `harmony models` shows them.
Harmony feeds square crops, so NNS2 trains on square inputs (the grid pool takes any size); its
140x116 native size is where `harmony models` measures it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from harmony.models.layers import ConvBN, Maxout, scaled


@dataclass(frozen=True)
class InceptionRow:
    """One inception row of Table 2: channel columns, pooling (max|l2), pool projection (0: none), stride."""

    name: str
    n1x1: int
    r3x3: int
    n3x3: int
    r5x5: int
    n5x5: int
    pool: str
    proj: int
    stride: int = 1


TABLE2 = (
    InceptionRow("3a", 64, 96, 128, 16, 32, "max", 32),
    InceptionRow("3b", 64, 96, 128, 32, 64, "l2", 64),
    InceptionRow("3c", 0, 128, 256, 32, 64, "max", 0, stride=2),
    InceptionRow("4a", 256, 96, 192, 32, 64, "l2", 128),
    InceptionRow("4b", 224, 112, 224, 32, 64, "l2", 128),
    InceptionRow("4c", 192, 128, 256, 32, 64, "l2", 128),
    InceptionRow("4d", 160, 144, 288, 32, 64, "l2", 128),
    InceptionRow("4e", 0, 160, 256, 64, 128, "max", 0, stride=2),
    InceptionRow("5a", 384, 192, 384, 48, 128, "l2", 128),
    InceptionRow("5b", 384, 192, 384, 48, 128, "max", 128),
)
NN4_NO_5X5 = ("4e", "5a", "5b")


def _pool(kind: str, stride: int) -> nn.Module:
    if kind == "max":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    return nn.Sequential(nn.ZeroPad2d(1), nn.LPPool2d(2, 3, stride=stride))  # zeros add nothing to an L2 sum


class Inception(nn.Module):
    """Parallel 1x1 / 1x1->3x3 / 1x1->5x5 / pool(->1x1) branches, concatenated along channels."""

    def __init__(self, cin: int, row: InceptionRow, width: float = 1.0, use_5x5: bool = True):
        super().__init__()
        w = lambda c: scaled(c, width)
        s = row.stride
        self.branches = nn.ModuleList()
        self.out_channels = 0
        if row.n1x1:
            self.branches.append(ConvBN(cin, w(row.n1x1), 1, stride=s))
            self.out_channels += w(row.n1x1)
        self.branches.append(nn.Sequential(ConvBN(cin, w(row.r3x3), 1), ConvBN(w(row.r3x3), w(row.n3x3), 3, stride=s)))
        self.out_channels += w(row.n3x3)
        if use_5x5:
            self.branches.append(nn.Sequential(ConvBN(cin, w(row.r5x5), 1), ConvBN(w(row.r5x5), w(row.n5x5), 5, stride=s)))
            self.out_channels += w(row.n5x5)
        pool: list[nn.Module] = [_pool(row.pool, s)]
        if row.proj:
            pool.append(ConvBN(cin, w(row.proj), 1))
        self.branches.append(nn.Sequential(*pool))
        self.out_channels += w(row.proj) if row.proj else cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)


def _trunk(width: float, no_5x5: tuple[str, ...] = ()) -> tuple[OrderedDict[str, nn.Module], int]:
    """Table 2 from conv1 to inception (5b): named stages and the channels out."""
    w = lambda c: scaled(c, width)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["conv1"] = ConvBN(3, w(64), 7, stride=2)
    layers["pool1"] = nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), nn.LocalResponseNorm(5))
    layers["inception_2"] = nn.Sequential(ConvBN(w(64), w(64), 1), ConvBN(w(64), w(192), 3))
    layers["pool2"] = nn.Sequential(nn.LocalResponseNorm(5), nn.MaxPool2d(3, stride=2, padding=1))
    cin = w(192)
    for row in TABLE2:
        block = Inception(cin, row, width, use_5x5=row.name not in no_5x5)
        layers[f"inception_{row.name}"] = block
        cin = block.out_channels
    return layers, cin


def _pooled(layers: OrderedDict[str, nn.Module], cin: int) -> tuple[nn.Module, int]:
    layers["avgpool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    return nn.Sequential(layers), cin


def nn2(width: float = 1.0) -> tuple[nn.Module, int]:
    """NN2 (native 224x224) up to the average pool: (B, 3, H, W) -> (B, 1024 * width)."""
    return _pooled(*_trunk(width))


def nn3(width: float = 1.0) -> tuple[nn.Module, int]:
    """NN3: NN2's network, run at 160x160."""
    return nn2(width)


def nn4(width: float = 1.0) -> tuple[nn.Module, int]:
    """NN4 (native 96x96): NN2 without the 5x5 branch in (4e), (5a), (5b)."""
    return _pooled(*_trunk(width, NN4_NO_5X5))


def _small(width: float, fc_units: int, grid: int) -> tuple[nn.Module, int]:
    layers, cin = _trunk(width)
    layers["fc1"] = nn.Sequential(nn.AdaptiveAvgPool2d(grid), nn.Flatten(), Maxout(cin * grid * grid, fc_units))
    layers["fc2"] = Maxout(fc_units, fc_units)
    return nn.Sequential(layers), fc_units


def nns1(width: float = 0.4375, fc_units: int = 2048, grid: int = 3) -> tuple[nn.Module, int]:
    """NNS1, reconstructed (native 165x165): NN2's trunk at 7/16 width, 3x3 grid, two maxout layers."""
    return _small(width, fc_units, grid)


def nns2(width: float = 0.14, fc_units: int = 896, grid: int = 3) -> tuple[nn.Module, int]:
    """NNS2, reconstructed (native 140x116): NN2's trunk at 0.14 width, 3x3 grid, two maxout layers."""
    return _small(width, fc_units, grid)

