"""FaceNet's triplet loss: max(D(a,p) - D(a,n) + margin, 0) with squared L2 distances."""

from __future__ import annotations

import torch

from harmony.distances import pairwise_sq_l2
from harmony.losses.miners import MINING, mine, pair_table


def _batch_all(dist: torch.Tensor, labels_a: torch.Tensor, labels_c: torch.Tensor,
               exclude: torch.Tensor | None, margin: float) -> torch.Tensor:
    """Mean over all triplets with positive loss, via sorted negatives and prefix sums.

    For a pair (a,p) the active negatives are those with D(a,n) < D(a,p) + margin; their loss sum
    is c * (D(a,p) + margin) - sum of the c smallest D(a,n): O(B^2) memory, no B^3 cube.
    """
    t = pair_table(dist, labels_a, labels_c, exclude)
    d_ap = dist.gather(1, t.pos_idx)
    with torch.no_grad():
        c = torch.searchsorted(t.neg_sorted, (t.d_ap + margin).contiguous(), right=False)
        c = torch.where(t.pos_ok, c, torch.zeros_like(c))
    sorted_d = dist.gather(1, t.neg_order)
    finite = torch.isfinite(t.neg_sorted)
    cs = torch.cumsum(torch.where(finite, sorted_d, torch.zeros_like(sorted_d)), dim=1)
    cs = torch.cat([torch.zeros_like(cs[:, :1]), cs], 1)  # cs[:, c] = sum of c smallest
    per_pair = c.to(dist.dtype) * (d_ap + margin) - cs.gather(1, c)
    n_active = c.sum()
    if n_active == 0:
        return dist.sum() * 0.0
    return per_pair[t.pos_ok].sum() / n_active.to(dist.dtype)


def mined_triplet_loss(anchors: torch.Tensor, candidates: torch.Tensor, labels_a: torch.Tensor,
                       labels_c: torch.Tensor, exclude: torch.Tensor | None = None, margin: float = 0.2,
                       mining: str = "semihard") -> torch.Tensor:
    """The shared core: anchors (A, d), candidates (C, d). ``exclude`` (A, C) removes self pairs."""
    if mining not in MINING:
        raise ValueError(f"mining must be one of {MINING}, got {mining!r}")
    dist = pairwise_sq_l2(anchors.float(), candidates.float())
    if mining == "all":
        return _batch_all(dist, labels_a, labels_c, exclude, margin)
    a, p, n = mine(dist, labels_a, labels_c, exclude, mining)
    if a.numel() == 0:
        return dist.sum() * 0.0
    return (dist[a, p] - dist[a, n] + margin).clamp_min(0.0).mean()


def triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2,
                 mining: str = "semihard") -> torch.Tensor:
    """FaceNet triplet loss over all anchor-positive pairs of a batch.

    embeddings (B, d) (L2-normalised in FaceNet; not required), labels (B,) int.
    ``semihard`` and ``hard`` average over every anchor-positive pair that has a negative;
    ``all`` averages over the triplets with positive loss. A batch with a single identity (no
    negatives) or no positives returns a zero loss that is still connected to the graph.
    """
    eye = torch.eye(len(labels), dtype=torch.bool, device=embeddings.device)
    return mined_triplet_loss(embeddings, embeddings, labels, labels, eye, margin, mining)
