"""The model zoo against its papers: FaceNet's Tables 1 and 2 (layer by layer and in total), the
paper totals of NN4/NNS1/NNS2/MobileFaceNet, a forward/backward pass of every backbone, and
`harmony models --json`. The big counts run on the meta device (no memory, no weights)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from harmony.models.backbones import BACKBONES, build_backbone
from harmony.models.complexity import CARDS, measure
from harmony.models.embedder import Embedder, EmbedderSpec

# FaceNet (Schroff et al. 2015) Table 1, NN1: layer -> (params, FLPS) as printed. fc7128 is the
# Embedder's head (Linear 4096 -> 128).
TABLE1 = {"conv1": ("9K", "115M"), "conv2a": ("4K", "13M"), "conv2": ("111K", "335M"), "conv3a": ("37K", "29M"),
          "conv3": ("664K", "521M"), "conv4a": ("148K", "29M"), "conv4": ("885K", "173M"),
          "conv5a": ("66K", "13M"), "conv5": ("590K", "116M"), "conv6a": ("66K", "13M"), "conv6": ("590K", "116M"),
          "fc1": ("103M", "103M"), "fc2": ("34M", "34M"), "fc7128": ("524K", "0.5M")}
# Table 2, NN2: row -> (params, FLOPS) as printed; "fully conn" (131K, 0.1M) is the head.
TABLE2 = {"conv1": ("9K", "119M"), "inception_2": ("115K", "360M"), "inception_3a": ("164K", "128M"),
          "inception_3b": ("228K", "179M"), "inception_3c": ("398K", "108M"), "inception_4a": ("545K", "107M"),
          "inception_4b": ("595K", "117M"), "inception_4c": ("654K", "128M"), "inception_4d": ("722K", "142M"),
          "inception_4e": ("717K", "56M"), "inception_5a": ("1.6M", "78M"), "inception_5b": ("1.6M", "78M"),
          "fc": ("131K", "0.1M")}
UNITS = {"K": 1e3, "M": 1e6, "B": 1e9}


def value(printed: str) -> tuple[float, float]:
    """A printed figure and half a unit of its last digit (what rounding to it allows)."""
    num, unit = printed[:-1], UNITS[printed[-1]]
    decimals = len(num.split(".")[1]) if "." in num else 0
    return float(num) * unit, 0.5 * unit * 10 ** -decimals


def close(measured: int, printed: str, rel: float = 0.05) -> bool:
    """Within 5% of a printed figure, or rounding to it (0.1M is 0.05M..0.15M)."""
    ref, tol = value(printed)
    return abs(measured - ref) <= max(tol, rel * ref)


def table_params(layer: nn.Module) -> int:
    """Parameters as the 2015 tables count them: weights and one bias per output. Ours has batch norm's
    scale and shift (2 per channel) instead of a conv bias, so its scale is left out here."""
    bn_scale = sum(m.weight.numel() for m in layer.modules() if isinstance(m, nn.BatchNorm2d))
    return sum(p.numel() for p in layer.parameters()) - bn_scale


def per_layer(name: str, size: int, head_dim: int = 128) -> dict[str, tuple[int, int]]:
    """(table-convention parameters, multiply-adds) of each top-level stage of a backbone and of the
    128-D head, on meta."""
    with torch.device("meta"):
        body, feat = build_backbone(name)
        head = nn.Linear(feat, head_dim)
        x = torch.empty(1, 3, size, size)
    out = {}
    for layer_name, layer in [*body.eval().named_children(), ("head", head)]:
        with FlopCounterMode(display=False) as c:
            x = layer(x)
        out[layer_name] = (table_params(layer), c.get_total_flops() // 2)
    return out


def test_multiply_adds_are_half_of_torchs_flops():
    """The convention the zoo reports in: one 3x3 conv of known size is k*k*cin*cout*H*W multiply-adds."""
    with torch.device("meta"):
        conv, x = nn.Conv2d(8, 16, 3, padding=1, bias=False), torch.empty(1, 8, 10, 10)
    with FlopCounterMode(display=False) as c:
        conv(x)
    assert c.get_total_flops() == 2 * 3 * 3 * 8 * 16 * 10 * 10


@pytest.mark.parametrize("name", ["nn1", "nn2"])
def test_paper_totals_within_5_percent(name):
    r = measure(name)
    assert abs(r.params / r.paper_params - 1) < 0.05, r
    assert abs(r.mult_adds / r.paper_mult_adds - 1) < 0.05, r


def test_nn1_layers_match_table_1():
    layers = per_layer("nn1", 220)
    layers["fc7128"] = layers.pop("head")
    assert {k for k, (p, _) in layers.items() if p} == set(TABLE1)  # every layer with weights is a table row
    for name, (params, flops) in TABLE1.items():
        p, madds = layers[name]
        ref, tol = value(params)
        assert abs(p - ref) <= tol, (name, p, params)  # rounds to the printed figure
        assert close(madds, flops), (name, madds, flops)


def test_nn2_rows_match_table_2():
    layers = per_layer("nn2", 224)
    layers["fc"] = layers.pop("head")
    assert {k for k, (p, _) in layers.items() if p} == set(TABLE2)
    for name, (params, flops) in TABLE2.items():
        p, madds = layers[name]
        assert close(p, params), (name, p, params)
        assert close(madds, flops), (name, madds, flops)


def test_inception_rows_have_the_tables_shapes():
    """Table 2's output sizes and depths: 28x28x256 after (3a), 14x14x640 after (3c), 7x7x1024 after (4e)."""
    body, _ = build_backbone("nn2")
    with torch.device("meta"):
        x = torch.empty(1, 3, 224, 224)
        seen = {}
        for name, layer in body.to("meta").eval().named_children():
            x = layer(x)
            seen[name] = tuple(x.shape[1:])
    assert seen["pool1"] == (64, 56, 56) and seen["inception_2"] == (192, 56, 56)
    assert seen["inception_3a"] == (256, 28, 28) and seen["inception_3b"] == (320, 28, 28)
    assert seen["inception_3c"] == (640, 14, 14) and seen["inception_4d"] == (640, 14, 14)
    assert seen["inception_4e"] == (1024, 7, 7) and seen["inception_5b"] == (1024, 7, 7)
    assert any(isinstance(m, nn.LPPool2d) for m in body.inception_3b.modules())  # "L2" in the table
    assert not any(isinstance(m, nn.LPPool2d) for m in body.inception_3a.modules())  # "m"


@pytest.mark.parametrize(("name", "tol"), [("nn4", 0.01), ("nns1", 0.05), ("nns2", 0.05), ("mobilefacenet", 0.02)])
def test_other_paper_totals(name, tol):
    """NN4's 285M; the NNS reconstructions were sized to their paper totals; MobileFaceNet 0.99M / 221M."""
    r = measure(name)
    if r.paper_params:
        assert abs(r.params_ratio - 1) < tol, r
    assert abs(r.mult_adds_ratio - 1) < tol, r


def test_nn3_is_nn2_at_160_and_nn4_drops_the_high_5x5():
    nn2, nn3 = measure("nn2"), measure("nn3")
    assert nn3.params == nn2.params and nn3.input_size == (160, 160)
    assert nn3.mult_adds < 0.55 * nn2.mult_adds
    body, feat = build_backbone("nn4")
    assert feat == 896  # (5b) without its 5x5 branch: 384 + 384 + 128
    assert len(body.inception_5a.branches) == 3 and len(body.inception_4d.branches) == 4


def test_mobilefacenet_has_a_global_depthwise_conv():
    body, feat = build_backbone("mobilefacenet")
    gd = body.gdconv[1]
    assert feat == 512 and gd.groups == 512 and gd.kernel_size == (7, 7)
    small, _ = build_backbone("mobilefacenet", {"input_size": 64})
    assert small.gdconv[1].kernel_size == (4, 4)


# (args, input (h, w)) per backbone: native size where it is cheap (or at a reduced width), a small input where not
SMALL = {
    "small_cnn": ({}, (64, 64)),
    "inception_resnet_v1": ({"blocks": [1, 1, 1]}, (80, 80)),
    "nn1": ({"input_size": 64, "width": 0.25, "fc_units": 128}, (64, 64)),
    "nn2": ({"width": 0.25}, (64, 64)),
    "nn3": ({"width": 0.25}, (64, 64)),
    "nn4": ({"width": 0.25}, (96, 96)),
    "nns1": ({"width": 0.25, "fc_units": 256}, (64, 64)),
    "nns2": ({}, (140, 116)),
    "mobilefacenet": ({"width": 0.5}, (112, 112)),
}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_trains_a_step(name):
    torch.manual_seed(0)
    args, (h, w) = SMALL[name]
    body, feat = build_backbone(name, args)
    y = body(torch.randn(2, 3, h, w))
    assert y.shape == (2, feat)
    y.square().mean().backward()
    grads = [p.grad for p in body.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_zoo_nets_in_the_embedder_at_64px():
    """The tiny recipes' shape: uint8 64 px crops -> unit rows, for a model with a non-square native size too."""
    for name, args in [("mobilefacenet", {"input_size": 64, "width": 0.25}), ("nns2", {"width": 0.1, "fc_units": 64})]:
        m = Embedder(EmbedderSpec(backbone=name, backbone_args=args, image_size=64, dim=32)).eval()
        out = m(torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8))
        assert out.shape == (2, 32)
        assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_every_backbone_has_a_card():
    assert set(CARDS) == set(BACKBONES)


def test_harmony_models_json():
    from harmony.cli.main import app

    r = CliRunner().invoke(app, ["models", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["backbone"]: row for row in json.loads(r.output)}
    assert set(rows) == set(BACKBONES)
    nn1 = rows["nn1"]
    assert nn1["input_size"] == [220, 220] and nn1["paper_params"] == 140e6
    assert abs(nn1["params_ratio"] - 1) < 0.05 and abs(nn1["mult_adds_ratio"] - 1) < 0.05
    assert rows["small_cnn"]["paper_params"] is None and rows["small_cnn"]["params"] > 0
