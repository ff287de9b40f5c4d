"""Online triplet mining inside a batch, in O(B^2) memory (never the B^3 triplet cube).

Anchors and candidates are separate sets so one miner serves both the base loss (candidates =
anchors) and the harmonic loss (candidates = v2 and v1 embeddings of the batch).
For every anchor-positive pair (a, p) the miner picks one negative:

- ``semihard`` (FaceNet; TF's ``triplet_semihard_loss`` semantics): the negative with the smallest
  D(a,n) strictly greater than D(a,p); if there is none, the negative with the largest D(a,n).
- ``hard``: the negative with the smallest D(a,n).

Per anchor, negatives are sorted once and each positive distance is located with a binary search,
so the work is O(B^2 log B) and memory O(B * C).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MINING = ("semihard", "hard", "all")


@dataclass(frozen=True)
class PairTable:
    """Per-anchor padded positives and sorted negatives (no gradients).

    pos_idx (A, M) candidate index of each positive, pos_ok (A, M) validity,
    neg_sorted (A, C) negative distances ascending (+inf pads), neg_order (A, C) their indices,
    n_neg (A,) number of negatives per anchor.
    """

    pos_idx: torch.Tensor
    pos_ok: torch.Tensor
    d_ap: torch.Tensor
    neg_sorted: torch.Tensor
    neg_order: torch.Tensor
    n_neg: torch.Tensor


def pair_table(dist: torch.Tensor, labels_a: torch.Tensor, labels_c: torch.Tensor,
               exclude: torch.Tensor | None = None) -> PairTable:
    """Build the table from an (A, C) distance matrix. ``exclude`` (A, C) bool drops pairs (self)."""
    with torch.no_grad():
        d = dist.detach()
        same = labels_a[:, None] == labels_c[None, :]
        pos = same if exclude is None else same & ~exclude
        neg = ~same
        m = max(int(pos.sum(1).max().item()) if pos.numel() else 0, 1)
        # stable sort puts positives first in their original column order
        pos_idx = torch.argsort((~pos).to(torch.int8), dim=1, stable=True)[:, :m]
        pos_ok = pos.gather(1, pos_idx)
        d_ap = d.gather(1, pos_idx)
        neg_sorted, neg_order = d.masked_fill(~neg, float("inf")).sort(dim=1)
        return PairTable(pos_idx, pos_ok, d_ap, neg_sorted, neg_order, neg.sum(1))


def mine(dist: torch.Tensor, labels_a: torch.Tensor, labels_c: torch.Tensor,
         exclude: torch.Tensor | None = None, strategy: str = "semihard") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return index triplets (a, p, n) into anchors/candidates: one per anchor-positive pair
    whose anchor has at least one negative."""
    if strategy not in ("semihard", "hard"):
        raise ValueError(f"mine() supports semihard and hard; got {strategy!r} (batch-all needs no miner)")
    t = pair_table(dist, labels_a, labels_c, exclude)
    with torch.no_grad():
        last = (t.n_neg - 1).clamp_min(0)[:, None].expand_as(t.d_ap)
        if strategy == "hard":
            col = torch.zeros_like(t.d_ap, dtype=torch.long)
        else:
            col = torch.searchsorted(t.neg_sorted, t.d_ap.contiguous(), right=True)
            col = torch.where(col < t.n_neg[:, None], col, last)
        n_idx = t.neg_order.gather(1, col)
        ok = t.pos_ok & (t.n_neg > 0)[:, None]
        a_idx = torch.arange(dist.shape[0], device=dist.device)[:, None].expand_as(col)
        return a_idx[ok], t.pos_idx[ok], n_idx[ok]
