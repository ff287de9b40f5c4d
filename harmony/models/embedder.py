"""FaceNet's model: backbone -> linear embedding layer -> L2 normalisation.

The embedder takes uint8 images (B, 3, H, W) and owns their normalisation, so every caller
(training, eval, galleries) feeds raw pixels the same way. ``spec`` is everything needed to
rebuild it; checkpoints carry spec + state_dict and load with ``weights_only=True``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from harmony.models.backbones import build_backbone
from harmony.models.branched import BranchedBody

CHECKPOINT_FORMAT = "harmony.embedder/1"


@dataclass(frozen=True)
class EmbedderSpec:
    backbone: str = "small_cnn"
    backbone_args: dict = field(default_factory=dict)
    dim: int = 128
    image_size: int = 64
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    dropout: float = 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EmbedderSpec":
        d = dict(d)
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        return cls(**d)


class Embedder(nn.Module):
    def __init__(self, spec: EmbedderSpec):
        super().__init__()
        self.spec = spec
        self.body, feat = build_backbone(spec.backbone, spec.backbone_args)
        self.body.to(memory_format=torch.channels_last)  # ~1.4x faster convs on CPU
        self.drop = nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity()
        self.head = nn.Linear(feat, spec.dim)
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)

    @property
    def dim(self) -> int:
        return self.spec.dim

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalise(x).contiguous(memory_format=torch.channels_last))

    def lower_features(self, x: torch.Tensor, n: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The output of the first ``n`` trainable body stages: what a partly frozen body caches
        (for a v1-branched body, v1's features too: see :meth:`BranchedBody.lower`)."""
        x = self.normalise(x).contiguous(memory_format=torch.channels_last)
        return self.body.lower(x, n) if isinstance(self.body, BranchedBody) else self.body[:n](x)

    def upper_features(self, z: torch.Tensor | tuple[torch.Tensor, torch.Tensor], n: int) -> torch.Tensor:
        """The rest of the body on :meth:`lower_features`' output."""
        if isinstance(self.body, BranchedBody):
            return self.body.upper(z, n)
        return self.body[n:](z.contiguous(memory_format=torch.channels_last))

    def lower_stages(self, n: int) -> nn.Module:
        """The first ``n`` trainable stages (the new body's, for a v1-branched body): what
        ``harmonic.frozen_stages`` freezes."""
        return self.body.new[:n] if isinstance(self.body, BranchedBody) else self.body[:n]

    def n_stages(self) -> int:
        """How many leading trainable body modules can be frozen (all but the pooling tail)."""
        body = self.body.new if isinstance(self.body, BranchedBody) else self.body
        if not isinstance(body, nn.Sequential):
            return 0
        return sum(1 for m in body if not isinstance(m, (nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout)))

    def embed_features(self, f: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.drop(f)).float(), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 or float in [0,1] -> (B, dim) float32, unit norm."""
        return self.embed_features(self.features(x))

    def reset_head(self, seed: int) -> None:
        """Re-initialise the embedding layer (harmonic training starts from a fresh head)."""
        g = torch.Generator().manual_seed(seed)
        bound = 1 / self.head.in_features**0.5
        with torch.no_grad():
            self.head.weight.uniform_(-bound, bound, generator=g)
            self.head.bias.uniform_(-bound, bound, generator=g)

    def checkpoint(self) -> dict:
        """A weights_only-loadable payload: format tag, spec, CPU state dict."""
        return {"format": CHECKPOINT_FORMAT, "spec": self.spec.as_dict(),
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}


def embedder_from_checkpoint(payload: dict) -> Embedder:
    from harmony.errors import IntegrityError

    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise IntegrityError("checkpoint is not a harmony embedder", hint="register models with `harmony train` or as external versions")
    model = Embedder(EmbedderSpec.from_dict(payload["spec"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval()
