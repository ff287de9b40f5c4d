"""Squared L2 distance, FaceNet's dissimilarity; the one place its sign convention lives."""

from __future__ import annotations

import torch


def pairwise_sq_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, d), (m, d) -> (n, m) squared L2 distances, clamped at 0 against round-off.

    Uses ||a||^2 + ||b||^2 - 2 a.b so it is exact for unnormalised inputs too (= 2 - 2 a.b on
    the unit sphere).
    """
    a2 = (a * a).sum(1, keepdim=True)
    b2 = (b * b).sum(1, keepdim=True).T
    return (a2 + b2 - 2.0 * (a @ b.T)).clamp_min(0.0)
