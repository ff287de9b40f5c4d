"""A v2 body that keeps v1's body as a frozen branch beside a new one (``harmonic.v1_branch``).

Why: a harmonic v2 must land on v1's identity centres for identities it never saw. Learning
v1's whole identity-to-embedding map again from another network's features generalises poorly
(a head on v2-base's frozen features alone scores below v1). Carrying v1's own features makes
that map exact for every face: v2's head starts as v1's head (so v2 starts *as* v1) and learns
how much of the new body's features to add. The price is v1's cost on every v2 embedding, which
the version's ``meta.cost`` records like any other network's (``harmony registry show``).

The branch is frozen for good: its forward runs without gradients and its BatchNorm stays in
eval mode whatever mode the module is put in, so no training stage can move v1's features.
"""

from __future__ import annotations

import torch
from torch import nn


class BranchedBody(nn.Module):
    """(B, 3, H, W) -> (B, old_dim + new_dim): v1's frozen body's features, then the new body's."""

    def __init__(self, old: nn.Module, new: nn.Module):
        super().__init__()
        self.old, self.new = old, new
        for p in self.old.parameters():
            p.requires_grad_(False)
        self.old.eval()

    def train(self, mode: bool = True) -> BranchedBody:
        super().train(mode)
        self.old.eval()  # v1's BatchNorm statistics never move
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            f_old = self.old(x)
        return torch.cat([f_old, self.new(x)], 1)

    def lower(self, x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """v1's features and the new body's first ``n`` stages' output: all that a stage 2 with
        those stages frozen needs to cache, so its steps run neither v1 nor the frozen stages."""
        with torch.no_grad():
            f_old = self.old(x)
        return f_old, self.new[:n](x)

    def upper(self, parts: tuple[torch.Tensor, torch.Tensor], n: int) -> torch.Tensor:
        """The features :meth:`forward` gives, from :meth:`lower`'s output."""
        f_old, z = parts
        return torch.cat([f_old, self.new[n:](z.contiguous(memory_format=torch.channels_last))], 1)


def v1_branch(old: dict, new: dict) -> tuple[nn.Module, int]:
    """The ``branched`` backbone: ``old``/``new`` are ``{"backbone": name, "backbone_args": {...}}``."""
    from harmony.models.backbones import build_backbone

    if not isinstance(old, dict) or not isinstance(new, dict) or "backbone" not in old or "backbone" not in new:
        raise TypeError("old and new must each be {'backbone': name, 'backbone_args': {...}}")
    body_old, d_old = build_backbone(old["backbone"], old.get("backbone_args") or {})
    body_new, d_new = build_backbone(new["backbone"], new.get("backbone_args") or {})
    return BranchedBody(body_old, body_new), d_old + d_new
