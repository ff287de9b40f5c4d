"""Parameters and multiply-adds of every registered backbone, measured on the built model.

Counted, never copied: the model is built on the meta device (no memory, so NN1's 140M
parameters cost nothing), with the Embedder's 128-D head, and one image at the backbone's native
size runs through torch's own counter, ``torch.utils.flop_counter.FlopCounterMode``. That counter
reports FLOPs as 2 per multiply-add (a convolution or matmul of M multiply-adds counts 2M; batch norm,
pooling, activations and normalisation count 0), so multiply-adds = FLOPs / 2.

The papers' "FLOPS" are multiply-adds: FaceNet's Table 1 gives NN1's conv1 (7x7x3 -> 64 at 110x110)
115M FLOPS, and 7*7*3*64*110*110 = 114M multiply-adds (228M in the 2-per-multiply-add convention);
NN1 measures 1.606B multiply-adds against the table's 1.6B. So the paper columns are compared with
multiply-adds. "parameters" is backbone + the 128-D head (FaceNet's tables count the final 128-D
layer; MobileFaceNet's too), batch-norm parameters included.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from harmony.models.backbones import BACKBONES, build_backbone

HEAD_DIM = 128


@dataclass(frozen=True)
class PaperFigures:
    """A network's cost as its paper states it (FLOPS meaning multiply-adds), and where."""

    params: float | None
    mult_adds: float | None
    source: str


@dataclass(frozen=True)
class ModelCard:
    """Where a backbone is measured: its native input (height, width), and the paper's figures if any."""

    input_size: tuple[int, int]
    paper: PaperFigures | None = None
    note: str = ""


CARDS: dict[str, ModelCard] = {
    "small_cnn": ModelCard((64, 64), note="harmony's CPU net, widths 16-32-64-64"),
    "inception_resnet_v1": ModelCard((160, 160), note="Szegedy et al. 2016"),
    "nn1": ModelCard((220, 220), PaperFigures(140e6, 1.6e9, "FaceNet Table 1")),
    "nn2": ModelCard((224, 224), PaperFigures(7.5e6, 1.6e9, "FaceNet Table 2")),
    "nn3": ModelCard((160, 160), note="NN2 at 160 px"),
    "nn4": ModelCard((96, 96), PaperFigures(None, 285e6, "FaceNet sec. 4")),
    "nns1": ModelCard((165, 165), PaperFigures(26e6, 220e6, "FaceNet sec. 4"), note="reconstructed"),
    "nns2": ModelCard((140, 116), PaperFigures(4.3e6, 20e6, "FaceNet sec. 4"),
                      note="reconstructed; trains on square crops"),
    "mobilefacenet": ModelCard((112, 112), PaperFigures(0.99e6, 221e6, "Chen et al. 2018")),
}


@dataclass(frozen=True)
class Complexity:
    """One row of `harmony models`: measured figures next to the paper's."""

    backbone: str
    input_size: tuple[int, int]
    feature_dim: int
    params: int  # backbone + 128-D head
    mult_adds: int  # per image, FLOPs / 2 from FlopCounterMode
    paper_params: float | None
    paper_mult_adds: float | None
    source: str
    note: str

    @property
    def params_ratio(self) -> float | None:
        return self.params / self.paper_params if self.paper_params else None

    @property
    def mult_adds_ratio(self) -> float | None:
        return self.mult_adds / self.paper_mult_adds if self.paper_mult_adds else None

    def as_dict(self) -> dict:
        return {"backbone": self.backbone, "input_size": list(self.input_size), "feature_dim": self.feature_dim,
                "params": self.params, "mult_adds": self.mult_adds, "paper_params": self.paper_params,
                "paper_mult_adds": self.paper_mult_adds, "params_ratio": self.params_ratio,
                "mult_adds_ratio": self.mult_adds_ratio, "source": self.source, "note": self.note}


def count(name: str, args: dict | None = None, input_size: tuple[int, int] | None = None,
          head_dim: int = HEAD_DIM) -> tuple[int, int, int]:
    """(parameters of backbone + head, multiply-adds of one image, feature dim), built on the meta device."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    h, w = input_size or CARDS[name].input_size
    with torch.device("meta"):
        body, feat = build_backbone(name, args)
        head = torch.nn.Linear(feat, head_dim)
        x = torch.empty(1, 3, h, w)
    body.eval()  # batch norm in train mode refuses a batch of one 1x1 map
    with FlopCounterMode(display=False) as counter:
        head(body(x))
    params = sum(p.numel() for m in (body, head) for p in m.parameters())
    return params, int(counter.get_total_flops()) // 2, feat


@functools.cache
def measure(name: str) -> Complexity:
    """A registered backbone at its native size with its default arguments (counted once per process)."""
    card = CARDS.get(name)
    if card is None:
        raise KeyError(f"no model card for backbone {name!r}: add one to CARDS in harmony/models/complexity.py")
    params, madds, feat = count(name)
    paper = card.paper or PaperFigures(None, None, "")
    return Complexity(name, card.input_size, feat, params, madds, paper.params, paper.mult_adds, paper.source, card.note)


def zoo() -> list[Complexity]:
    """Every registered backbone, in registry order."""
    return [measure(name) for name in BACKBONES]


def embedder_cost(spec) -> dict:
    """A trained network's size and cost at the input it was trained on (an ``EmbedderSpec``):
    what a registered version records, so an upgrade can say what a face costs to embed."""
    params, madds, _ = count(spec.backbone, spec.backbone_args, (spec.image_size, spec.image_size), spec.dim)
    return {"params": params, "mult_adds": madds, "input_size": spec.image_size}


def version_cost(meta: dict) -> dict | None:
    """A version's recorded cost (``meta["cost"]``), measured from its spec when an older version
    lacks it; None for an external model (ONNX, TorchScript, dlib: no spec to build)."""
    if meta.get("cost"):
        return meta["cost"]
    if "spec" not in meta:
        return None
    from harmony.models.embedder import EmbedderSpec

    try:
        return embedder_cost(EmbedderSpec.from_dict(meta["spec"]))
    except (KeyError, TypeError, ValueError):
        return None
