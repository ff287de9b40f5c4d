"""Squared L2, FaceNet's dissimilarity: the one place its formula and sign convention live.

``D(a, b) = ||a - b||^2``; smaller is more alike, and a pair is accepted when ``D < t``
(DESIGN section 2). Two formulations of that one definition, one per input contract:

- unit vectors (every embedding harmony stores, evaluates or searches): ``D = max(2 - 2 a.b, 0)``
  in float32, from dot products (``sq_l2_from_dots``). Metrics, evaluation and FAISS
  inner-product scores all go through it, so a threshold t* means the same everywhere.
- any vectors (the training losses, whose inputs may leave the unit sphere):
  ``||a||^2 + ||b||^2 - 2 a.b`` clamped at 0 (``pairwise_sq_l2``, torch, differentiable).
  On the unit sphere the two agree up to float32 rounding.

Importing this module loads numpy only; torch is touched only by the functions given tensors.
Tests: tests/test_distances.py (both against ``||a - b||^2`` in float64).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

Dots = TypeVar("Dots", np.ndarray, "torch.Tensor")


def sq_l2_from_dots(g: Dots, inplace: bool = False) -> Dots:
    """Dot products ``a.b`` of unit vectors -> squared L2 ``max(2 - 2 a.b, 0)``, same dtype.

    numpy arrays or torch tensors. ``inplace`` overwrites ``g`` (the tiled VAL@FAR and top-k
    kernels reuse one matmul buffer per tile; a fresh array per tile would cost more than the
    matmul). ``2 - 2g`` rounds once (``2g`` is exact), in place or not, so both give equal bits.
    """
    if isinstance(g, np.ndarray):
        if inplace:
            np.multiply(g, -2.0, out=g)
            np.add(g, 2.0, out=g)
            return np.maximum(g, 0.0, out=g)
        return np.maximum(2.0 - 2.0 * g, 0.0).astype(g.dtype, copy=False)
    if inplace:
        return g.mul_(-2.0).add_(2.0).clamp_(min=0.0)
    return (2.0 - 2.0 * g).clamp_(min=0.0)


def paired_sq_l2(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise ``D(x_i, y_i)`` of unit vectors ``(n, d)``, ``(n, d)`` -> ``(n,)`` float32."""
    return sq_l2_from_dots(np.einsum("ij,ij->i", x, y, dtype=np.float32))


def pairwise_sq_l2(a: "torch.Tensor", b: "torch.Tensor") -> "torch.Tensor":
    """(n, d), (m, d) -> (n, m) squared L2 distances of any vectors, clamped at 0 against round-off.

    Uses ``||a||^2 + ||b||^2 - 2 a.b`` so it is exact for unnormalised inputs too (= 2 - 2 a.b on
    the unit sphere); differentiable, for the training losses.
    """
    a2 = (a * a).sum(1, keepdim=True)
    b2 = (b * b).sum(1, keepdim=True).T
    return (a2 + b2 - 2.0 * (a @ b.T)).clamp_min(0.0)
