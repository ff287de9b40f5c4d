"""The harmonic triplet loss (FaceNet appendix) and the prototype pull.

Each batch is embedded by the new model (v2, trainable) and the old one (v1, frozen). Triplets
are mined over the union: anchors from v2 (or from both), positives and negatives from v1 and v2.
A v2 anchor's own v1 embedding counts as a positive, so v2 is pulled onto v1's structure while
staying discriminative. ``prototype_weight`` adds mean ||v2(x) - proto_v1(id(x))||^2, where a v1
prototype is the L2-normalised mean v1 embedding of a training identity; 0 gives the paper's loss.
"""

from __future__ import annotations

import torch

from harmony.losses.triplet import mined_triplet_loss


def prototype_pull(new: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Mean squared L2 from each v2 embedding (B, d) to its identity's v1 prototype (B, d)."""
    return ((new - prototypes) ** 2).sum(1).mean()


def centre_offset(new: torch.Tensor, old: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over the batch's identities of ||mean v2 - mean v1||^2 over that identity's images.

    The part of a v2 embedding that moves an identity's centre away from v1's is what a v2 probe
    carries into every comparison with v1's gallery (and v2v2 never sees), while a change that
    averages out over an identity's images only removes v1's per-image noise. This penalises the
    first alone; the prototype pull penalises both."""
    ids, at = torch.unique(labels, return_inverse=True)
    d = new - old.detach()
    sums = torch.zeros(len(ids), d.shape[1], dtype=d.dtype, device=d.device).index_add_(0, at, d)
    counts = torch.bincount(at, minlength=len(ids)).to(d.dtype)
    return ((sums / counts[:, None]) ** 2).sum(1).mean()


def relative_order_loss(new: torch.Tensor, old: torch.Tensor, labels: torch.Tensor, tau: float = 0.05) -> torch.Tensor:
    """The relative-order contrastive loss of hot-refresh upgrades (RACT, ICLR 2022), in a batch.

    For each v2 anchor the positives are the v1 embeddings of its identity (its own image's
    included) and the negatives every other identity's embedding under v1 *and* v2, so a v2 query
    must rank its v1-stored match above new-version impostors too: the order a half-backfilled
    gallery needs. InfoNCE over cosine similarity at temperature ``tau``."""
    b = len(labels)
    cand = torch.cat([old.detach(), new], 0)
    logits = new @ cand.T / tau
    same = labels[:, None] == torch.cat([labels, labels])[None, :]
    pos = same.clone()
    pos[:, b:] = False  # v2 candidates are never positives
    keep = pos | ~same  # drop v2 same-identity candidates from the denominator
    logits = logits.masked_fill(~keep, float("-inf"))
    log_den = torch.logsumexp(logits, 1)
    log_num = torch.logsumexp(logits.masked_fill(~pos, float("-inf")), 1)
    return (log_den - log_num).mean()


def harmonic_triplet_loss(new: torch.Tensor, old: torch.Tensor, labels: torch.Tensor, margin: float = 0.2,
                          mining: str = "semihard", anchors: str = "new", prototypes: torch.Tensor | None = None,
                          prototype_weight: float = 0.0, positives: str = "both", negatives: str = "both"
                          ) -> torch.Tensor:
    """new, old (B, d): the same images under v2 and v1 (old carries no gradient); labels (B,).

    ``positives="old"`` takes a v2 anchor's positives from the v1 side only (negatives stay the
    union), so every triplet is a cross-version ranking. ``negatives="old"`` (with v1 positives)
    takes the negatives from v1's side too: each triplet is exactly a v2 query against a v1
    gallery, what VAL(v2->v1) scores, and v2's own ranking is left to the prototype pull."""
    b = len(labels)
    if negatives not in ("both", "old"):
        raise ValueError(f"negatives must be 'both' or 'old', got {negatives!r}")
    if negatives == "old" and (anchors != "new" or positives != "old"):
        raise ValueError("negatives='old' needs anchors='new' and positives='old'")
    cand = torch.cat([new, old.detach()], 0)
    lab_c = torch.cat([labels, labels])
    idx = torch.arange(b, device=new.device)
    if positives not in ("both", "old"):
        raise ValueError(f"positives must be 'both' or 'old', got {positives!r}")
    if anchors == "new" and negatives == "old":  # v1 candidates only; an anchor's own v1 embedding is a positive
        loss = mined_triplet_loss(new, old.detach(), labels, labels, None, margin, mining)
    elif anchors == "new":
        exclude = torch.zeros(b, 2 * b, dtype=torch.bool, device=new.device)
        exclude[idx, idx] = True
        if positives == "old":
            exclude[:, :b] = True
        loss = mined_triplet_loss(new, cand, labels, lab_c, exclude, margin, mining)
    elif anchors == "both":
        if positives == "old":
            raise ValueError("positives='old' needs anchors='new'")
        exclude = torch.eye(2 * b, dtype=torch.bool, device=new.device)
        anchors_t = torch.cat([new, old.detach()], 0)
        loss = mined_triplet_loss(anchors_t, cand, lab_c, lab_c, exclude, margin, mining)
    else:
        raise ValueError(f"anchors must be 'new' or 'both', got {anchors!r}")
    if prototype_weight > 0:
        if prototypes is None:
            raise ValueError("prototype_weight > 0 needs prototypes")
        loss = loss + prototype_weight * prototype_pull(new, prototypes)
    return loss
