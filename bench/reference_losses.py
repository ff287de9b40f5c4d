"""Reference implementations the triplet loss is compared with (bench-only).

``tf_style_semihard``: a line-by-line torch port of the structure of TensorFlow's
``triplet_semihard_loss`` (tile the distance matrix to (B*B, B), mask, reduce): O(B^3) memory.
"""

from __future__ import annotations

import torch


def tf_style_semihard(emb: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    b = len(labels)
    pdist = torch.cdist(emb, emb) ** 2
    adj = labels[:, None] == labels[None, :]
    adj_not = ~adj
    pdist_tile = pdist.repeat(b, 1)  # (B*B, B): row (i*B + j) holds D(j, :) for anchor j, pair index i
    mask = adj_not.repeat(b, 1) & (pdist_tile > pdist.T.reshape(-1, 1))
    mask_final = (mask.float().sum(1, keepdim=True) > 0).reshape(b, b).T
    big = pdist_tile.max() + 1
    neg_outside = torch.where(mask, pdist_tile, big).min(1, keepdim=True).values.reshape(b, b).T
    neg_inside = torch.where(adj_not, pdist, pdist.min() - 1).max(1, keepdim=True).values.repeat(1, b)
    semi_hard = torch.where(mask_final, neg_outside, neg_inside)
    loss_mat = margin + pdist - semi_hard
    mask_pos = adj.float() - torch.eye(b)
    n_pos = mask_pos.sum()
    return (loss_mat.clamp_min(0) * mask_pos).sum() / n_pos
