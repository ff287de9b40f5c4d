"""Exact k-nearest-neighbour identification accuracy (top-k), by blocked matmul.

A probe is a hit at k when fewer than k wrong-identity gallery items lie at a distance <= the
nearest right-identity item. Ties go against the probe (a wrong item at the same distance as
the right one counts as closer), so the figure never depends on an arbitrary tie-break.
Probes whose identity has no gallery item count as misses (closed-set accuracy over all probes).
Distances: ``harmony.distances.sq_l2_from_dots`` (``max(2 - 2 a.b, 0)`` in float32), as everywhere.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from harmony.distances import sq_l2_from_dots
from harmony.errors import InvalidInput
from harmony.metrics._blocked import full_fp32
from harmony.metrics._checks import as_embeddings, as_labels, label_codes, warn_if_not_unit

_BLOCK_ELEMS = 1 << 24  # distances per row block (64 MiB float32)


def _check_ks(ks: Sequence[int]) -> list[int]:
    out = [int(k) for k in ks]
    if not out or any(k < 1 for k in out):
        raise InvalidInput(f"ks must be positive integers, got {list(ks)}", hint="use ks=(1, 5)")
    return out


def wrong_closer_counts(probe: np.ndarray, probe_codes: np.ndarray, gallery: np.ndarray,
                        gallery_codes: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Per probe: number of wrong-identity gallery items at distance <= the nearest right one.

    ``-1`` marks probes with no right-identity item in the gallery. Inputs are validated arrays.
    """
    import torch

    n_p, n_g = probe.shape[0], gallery.shape[0]
    G = torch.from_numpy(gallery).T.contiguous()
    rows = max(1, min(n_p, _BLOCK_ELEMS // max(n_g, 1)))
    out = np.empty(n_p, dtype=np.int64)
    with torch.inference_mode(), full_fp32():
        for i0 in range(0, n_p, rows):
            i1 = min(n_p, i0 + rows)
            d = sq_l2_from_dots((torch.from_numpy(probe[i0:i1]) @ G).numpy(), inplace=True)
            if exclude_self:
                d[np.arange(i1 - i0), np.arange(i0, i1)] = np.inf
            right = probe_codes[i0:i1, None] == gallery_codes[None, :]
            best = np.where(right, d, np.inf).min(axis=1)
            wrong_closer = ((d <= best[:, None]) & ~right).sum(axis=1)
            out[i0:i1] = np.where(np.isfinite(best), wrong_closer, -1)
    return out


def knn_accuracy(probe: Any, probe_labels: Any, gallery: Any, gallery_labels: Any,
                 ks: Sequence[int] = (1, 5), exclude_self: bool = False) -> dict[int, float]:
    """Top-k identification accuracy of probes ``(n_p, d)`` against a gallery ``(n_g, d)``.

    ``exclude_self``: probe and gallery are the same set (leave-one-out): item i never matches
    itself. Returns ``{k: share of probes hit at k}``.
    """
    ks_ = _check_ks(ks)
    P = as_embeddings(probe, "probe")
    G = as_embeddings(gallery, "gallery")
    if P.shape[1] != G.shape[1]:
        raise InvalidInput(f"probe dimension {P.shape[1]} differs from gallery dimension {G.shape[1]}",
                           hint="compare embeddings of the same dimension (use a compatible version)")
    pl = as_labels(probe_labels, P.shape[0], "probe_labels")
    gl = as_labels(gallery_labels, G.shape[0], "gallery_labels")
    if exclude_self and P.shape[0] != G.shape[0]:
        raise InvalidInput("exclude_self needs probe and gallery to be the same set",
                           hint="pass the same embeddings twice, or exclude_self=False")
    warn_if_not_unit(P, "probe")
    warn_if_not_unit(G, "gallery")
    pc, gc = label_codes(pl, gl)
    counts = wrong_closer_counts(P, pc, G, gc, exclude_self=exclude_self)
    found = counts >= 0
    return {k: float((found & (counts < k)).mean()) for k in ks_}
