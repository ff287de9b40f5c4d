"""FaceNet's NN1 (Schroff et al. 2015, Table 1): Zeiler & Fergus with 1x1 convolutions, 220x220 input.

Layer by layer as the table (names are its rows): conv1 7x7 s2 64, pool1 3x3 s2, rnorm1, conv2a 1x1
64, conv2 3x3 192, rnorm2, pool2, conv3a 1x1 192, conv3 3x3 384, pool3, conv4a/conv4 (384 -> 256),
conv5a/conv5, conv6a/conv6 (256), pool4 -> 7x7x256, fc1 maxout p=2 (32x128 units), fc2 maxout p=2.
The table's fc7128 (4096 -> 128) and L2 are the Embedder's head, so backbone + head at dim 128 is
the table's 140M parameters / 1.6B multiply-adds. Pools pad by 1 so 110 -> 55 -> 28 -> 14 -> 7 as in
the table; rnorm is local response normalisation (size 5, AlexNet's).
Other inputs: fc1 reads the last map average-pooled to the grid of ``input_size`` (7x7 at 220), so
the net runs at any size; ``width`` scales every conv and ``fc_units`` the maxout layers (tiny recipes).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from harmony.models.layers import ConvBN, Maxout, Size, halvings, pair, scaled

# (name, kernel, stride, output channels) of Table 1's convolutions; None marks a pool or rnorm row
_TABLE1 = (("conv1", 7, 2, 64), ("pool1",), ("rnorm1",),
           ("conv2a", 1, 1, 64), ("conv2", 3, 1, 192), ("rnorm2",), ("pool2",),
           ("conv3a", 1, 1, 192), ("conv3", 3, 1, 384), ("pool3",),
           ("conv4a", 1, 1, 384), ("conv4", 3, 1, 256),
           ("conv5a", 1, 1, 256), ("conv5", 3, 1, 256),
           ("conv6a", 1, 1, 256), ("conv6", 3, 1, 256), ("pool4",))


def nn1(input_size: Size = 220, width: float = 1.0, fc_units: int = 4096, pieces: int = 2) -> tuple[nn.Module, int]:
    """NN1 up to fc2: (B, 3, H, W) -> (B, fc_units). ``input_size`` sets fc1's input grid (H/32 rounded up)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    cin = 3
    for row in _TABLE1:
        name = row[0]
        if name.startswith("pool"):
            layers[name] = nn.MaxPool2d(3, stride=2, padding=1)
        elif name.startswith("rnorm"):
            layers[name] = nn.LocalResponseNorm(5)
        else:
            _, k, s, c = row
            cout = scaled(c, width)
            layers[name] = ConvBN(cin, cout, k, stride=s)
            cin = cout
    h, w = (halvings(n, 5) for n in pair(input_size))  # conv1 and four pools halve the map
    layers["fc1"] = nn.Sequential(nn.AdaptiveAvgPool2d((h, w)), nn.Flatten(), Maxout(cin * h * w, fc_units, pieces))
    layers["fc2"] = Maxout(fc_units, fc_units, pieces)
    return nn.Sequential(layers), fc_units
