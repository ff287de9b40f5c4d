"""A transform h between two embedding versions: stored v1 vectors -> v2's space, no image read.

FCT without side-information (Ramanujan et al., "Forward Compatible Training", CVPR 2022): a small
network maps old embeddings into the new model's space, so a gallery whose photos are gone can
still be upgraded. Here ``h(x) = normalise(P x + MLP(x))``: ``P`` is a linear map (started at the
least-squares fit of v2 on v1 by the trainer, so h begins as the best linear transform) and the
MLP (``blocks`` hidden layers of width ``hidden``, ReLU, optionally layer or batch norm; last
layer zero-initialised) learns the non-linear remainder. Batch norm generalises worse here: P x K
batches hold a few identities each, so their statistics are not the population's (on a toy
non-linear map, held-out L2 0.150 with batch norm against 0.005 without). Input and output dims may differ (a 128-D dlib gallery mapped
to a 512-D model). Checkpoints carry spec + state dict and load with ``weights_only=True``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harmony.errors import IntegrityError, InvalidInput

if TYPE_CHECKING:
    from harmony.registry import Registry, TransformEdge

CHECKPOINT_FORMAT = "harmony.transform/1"
NORMS = ("none", "layer", "batch")
APPLY_BATCH = 65536  # vectors per forward pass when converting a gallery (32 MB of float32 at 128-D)


@dataclass(frozen=True)
class TransformNetSpec:
    """Everything needed to rebuild h: its input/output dims and the MLP's shape."""

    in_dim: int
    out_dim: int
    hidden: int
    blocks: int = 1
    norm: str = "none"

    def __post_init__(self) -> None:
        for key in ("in_dim", "out_dim", "hidden"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidInput(f"transform {key} must be a positive integer, got {v!r}")
        if isinstance(self.blocks, bool) or not isinstance(self.blocks, int) or self.blocks < 0:
            raise InvalidInput(f"transform blocks must be an integer >= 0, got {self.blocks!r}")
        if self.norm not in NORMS:
            raise InvalidInput(f"unknown transform norm {self.norm!r}", hint=f"use one of {', '.join(NORMS)}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TransformNetSpec":
        known = set(cls.__dataclass_fields__)
        if not isinstance(d, dict) or not known.issuperset(d) or not {"in_dim", "out_dim", "hidden"} <= set(d):
            raise IntegrityError(f"transform spec {d!r} is not one this harmony wrote",
                                 hint="re-train the transform with `harmony train transform`")
        return cls(**d)


class Transform(nn.Module):
    """h: (B, in_dim) unit vectors -> (B, out_dim) unit vectors."""

    def __init__(self, spec: TransformNetSpec):
        super().__init__()
        self.spec = spec
        self.proj = nn.Linear(spec.in_dim, spec.out_dim, bias=False)
        layers: list[nn.Module] = []
        width = spec.in_dim
        for _ in range(spec.blocks):
            layers.append(nn.Linear(width, spec.hidden, bias=spec.norm != "batch"))
            if spec.norm == "batch":
                layers.append(nn.BatchNorm1d(spec.hidden))
            elif spec.norm == "layer":
                layers.append(nn.LayerNorm(spec.hidden))
            layers.append(nn.ReLU(inplace=True))
            width = spec.hidden
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(width, spec.out_dim) if spec.blocks else None
        if self.out is not None:  # the residual branch starts silent: h starts as its linear part
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    @property
    def in_dim(self) -> int:
        return self.spec.in_dim

    @property
    def out_dim(self) -> int:
        return self.spec.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(x)
        if self.out is not None:
            y = y + self.out(self.mlp(x))
        return F.normalize(y.float(), dim=1)

    def set_linear(self, weight: np.ndarray) -> None:
        """Start the linear part at ``weight`` (out_dim, in_dim), e.g. a least-squares fit."""
        w = torch.as_tensor(np.asarray(weight, dtype=np.float32))
        if tuple(w.shape) != (self.out_dim, self.in_dim):
            raise InvalidInput(f"linear weight of shape {tuple(w.shape)}, expected ({self.out_dim}, {self.in_dim})")
        with torch.no_grad():
            self.proj.weight.copy_(w)

    def checkpoint(self) -> dict:
        """A weights_only-loadable payload: format tag, spec, CPU state dict."""
        return {"format": CHECKPOINT_FORMAT, "spec": self.spec.as_dict(),
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}


def transform_from_checkpoint(payload: dict) -> Transform:
    """Rebuild h from :meth:`Transform.checkpoint` (loaded with ``weights_only=True`` by the caller)."""
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise IntegrityError("checkpoint is not a harmony transform",
                             hint="register transforms with `harmony train transform`")
    model = Transform(TransformNetSpec.from_dict(payload.get("spec")))
    try:
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError) as e:
        raise IntegrityError(f"transform checkpoint does not match its spec: {str(e).splitlines()[0]}",
                             hint="re-train the transform with `harmony train transform`") from None
    return model.eval()


def apply_transform(model: Transform, vectors: np.ndarray, batch_size: int = APPLY_BATCH) -> np.ndarray:
    """h over ``(n, in_dim)`` vectors (re-normalised first: decoded 8-bit codes are not exactly
    unit) -> ``(n, out_dim)`` float32 unit rows, on the CPU in eval mode."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != model.in_dim:
        raise InvalidInput(f"transform takes {model.in_dim}-D vectors, got shape {x.shape}",
                           hint="apply it to vectors of the version it maps from")
    out = np.empty((x.shape[0], model.out_dim), np.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for a in range(0, x.shape[0], max(int(batch_size), 1)):
                chunk = torch.from_numpy(np.ascontiguousarray(x[a:a + batch_size]))
                out[a:a + chunk.shape[0]] = model(F.normalize(chunk, dim=1)).numpy()
    finally:
        model.train(was_training)
    return out


def load_transform(reg: Registry, name: str) -> tuple[TransformEdge, Transform]:
    """A registered transform edge and its h: the artifact's sha256 is checked against the row,
    the file loads with ``weights_only=True`` (no code in it runs), and h's dims must be the edge's."""
    from harmony.models.loading import load_torch_checkpoint

    edge = reg.get_transform(name)
    model = transform_from_checkpoint(load_torch_checkpoint(reg.transform_artifact_path(edge.name, verify=True)))
    if (model.in_dim, model.out_dim) != (edge.in_dim, edge.out_dim):
        raise IntegrityError(f"transform {edge.name} is recorded as {edge.in_dim}-D -> {edge.out_dim}-D but its "
                             f"network maps {model.in_dim}-D -> {model.out_dim}-D",
                             hint="re-train it with `harmony train transform` under a new name")
    return edge, model
