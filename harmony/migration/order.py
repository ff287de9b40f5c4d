"""Backfill order: which items a backfill re-embeds first. Pure functions over numpy arrays.

Policies (``POLICIES``):

- ``sequential``: the items' change order (the gallery's seq counter), oldest change first.
- ``random``: a permutation drawn from ``numpy.random.default_rng(seed)``; the seed is recorded
  with the backfill, so a resumed backfill continues in the same order.
- ``uncertainty``: re-embed first where a new vector is worth most, a heuristic in the spirit of
  FastFill (which learns per-item uncertainty). Queries mid-migration are embedded by the new
  version and find their identity most reliably against a same-version vector, and a stored
  vector is least trustworthy when it lies far from its identity's centre (its same-identity
  pairs fail the threshold) or closer to another identity's centre (it is misfiled). With items
  carrying identities (``identity-centres``; ``c_y`` = the L2-normalised mean old vector of
  identity ``y``, ``D_own`` = D(x_i, c_own), ``D_other`` = the distance to the nearest other
  centre), the priority is, highest first:

  1. ``8 + D_own`` for each identity's anchor, its item nearest its centre: every identity gets
     one new vector first (its most typical item), the identity whose best item is worst first;
  2. ``4 + D_own - D_other`` for the other items that are misfiled (``D_own > D_other``);
  3. ``D_own`` for the rest: farthest from their identity's centre first.

  Without usable identities (``neighbour-distance``: an item without identity, or fewer than
  half of the items sharing their identity with another item) the priority is the mean distance
  to the item's 3 nearest other items (isolated stored vectors first).

  Measured (bench/bench_backfill_order.py, 3 seeds, harmonic v2 over v1; the rule was chosen on
  the held-out VAL identities): about +0.03 area under VAL@1e-3 against random on both the VAL and
  the TEST identities, top-1 area within +-0.002 of random. Alternatives compared once on the
  same embeddings (not part of the bench): ``D_own - D_other`` alone lost about 0.01 VAL area; ``D_own`` alone gained VAL area but lost about 0.004 top-1
  area; anchors first is what keeps top-1 level with random. Equal priorities keep the input
  order. Distances are squared L2 of unit vectors; nearest centres / neighbours come from the
  FAISS wrapper (``harmony.gallery.index``), flat and exact.

Every policy is deterministic given its inputs and seed. Callers pass the items in seq order;
the result is a permutation of positions into those arrays. Cost of the uncertainty priorities
(exact, flat FAISS): n x identities x d with identities, n^2 x d without.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harmony.errors import InvalidInput

SEQUENTIAL, RANDOM, UNCERTAINTY = "sequential", "random", "uncertainty"
POLICIES = (SEQUENTIAL, RANDOM, UNCERTAINTY)
CENTRES, NEIGHBOURS = "identity-centres", "neighbour-distance"
SCORES = (CENTRES, NEIGHBOURS)
SCORE_TEXT = {CENTRES: "one item per identity first (the one nearest its identity's centre), then items nearer "
                       "another identity's centre than their own, then the rest farthest from their centre first",
              NEIGHBOURS: "no usable identities: items farthest from their 3 nearest neighbours first"}
NEIGHBOURS_K = 3


@dataclass(frozen=True)
class OrderSpec:
    """A backfill order as the user chose it: policy and seed (the seed matters for ``random``)."""

    policy: str = SEQUENTIAL
    seed: int = 0

    def __post_init__(self) -> None:
        check_policy(self.policy)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise InvalidInput(f"order seed must be a non-negative integer, got {self.seed!r}", hint="use --seed 0")

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "seed": int(self.seed)}

    def same_as(self, other: OrderSpec) -> bool:
        """Same order of items: same policy, and the same seed where the seed matters (random)."""
        return self.policy == other.policy and (self.policy != RANDOM or self.seed == other.seed)

    def describe(self) -> str:
        return self.policy + (f" (seed {self.seed})" if self.policy == RANDOM else "")


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise InvalidInput(f"unknown backfill order {policy!r}", hint=f"use one of {', '.join(POLICIES)}")
    return policy


def uncertainty_method(labels: np.ndarray | None) -> str:
    """Which priority the labels allow: identity centres when every item has a non-empty identity
    and at least half of the items share their identity with another item, neighbours otherwise."""
    if labels is None or len(labels) == 0:
        return NEIGHBOURS
    lab = np.asarray(labels).astype(str)
    if (lab == "").any():
        return NEIGHBOURS
    _, codes = np.unique(lab, return_inverse=True)
    paired = np.bincount(codes)[codes] >= 2
    return CENTRES if 2 * int(paired.sum()) >= lab.size else NEIGHBOURS


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _nearest(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of ``base`` per query: squared L2 ``(nq, k)`` and positions (-1 = none)."""
    from harmony.gallery import index as fx

    index = fx.make_index(base.shape[1], "flat")
    fx.add(index, np.arange(base.shape[0], dtype=np.int64), base)
    return fx.search(index, queries, min(k, base.shape[0]))


def centre_priority(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The identity-centre priority per item (anchors 8 + D_own, misfiled 4 + D_own - D_other,
    the rest D_own; see the module doc)."""
    x = _unit(vectors)
    names, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    sums = np.zeros((names.size, x.shape[1]), np.float64)
    np.add.at(sums, codes, x)
    centres = _unit(sums)
    own = np.maximum(2.0 - 2.0 * np.einsum("ij,ij->i", x, centres[codes]).astype(np.float64), 0.0)
    by_identity = np.lexsort((own, codes))  # within each identity, nearest its centre first (ties: input order)
    anchor = np.zeros(x.shape[0], bool)
    anchor[by_identity[np.r_[True, codes[by_identity][1:] != codes[by_identity][:-1]]]] = True
    out = own.copy()
    if names.size >= 2:
        D, I = _nearest(centres, x, 2)
        other = np.where(I[:, 0] != codes, D[:, 0], D[:, 1]).astype(np.float64)
        misfiled = ~anchor & (own > other)
        out[misfiled] = 4.0 + own[misfiled] - other[misfiled]
    out[anchor] = 8.0 + own[anchor]
    return out


def neighbour_priority(vectors: np.ndarray, k: int = NEIGHBOURS_K) -> np.ndarray:
    """Mean distance to the ``k`` nearest other items (fewer when there are fewer; 0 for one item)."""
    x = _unit(vectors)
    n = x.shape[0]
    if n < 2:
        return np.zeros(n, np.float64)
    k = min(k, n - 1)
    D, I = _nearest(x, x, k + 1)
    not_self = I != np.arange(n)[:, None]
    # the item itself is among its k+1 nearest (distance 0) unless duplicates tie with it: drop it by id
    keep = np.where(not_self.sum(axis=1, keepdims=True) == k + 1, np.arange(k + 1) < k, not_self)
    return D[keep].reshape(n, k).astype(np.float64).mean(axis=1)


def uncertainty_scores(vectors: np.ndarray, labels: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """(priority per item, the priority's name): higher = re-embed sooner."""
    x = np.asarray(vectors)
    if x.ndim != 2 or (labels is not None and len(labels) != x.shape[0]):
        raise InvalidInput(f"uncertainty needs (n, d) vectors and n labels, got {x.shape} and "
                           f"{None if labels is None else len(labels)}", hint="pass one label per vector")
    method = uncertainty_method(labels)
    if method == CENTRES:
        return centre_priority(x, labels), method
    return neighbour_priority(x), method


def backfill_order(policy: str, n: int, vectors: np.ndarray | None = None, labels: np.ndarray | None = None,
                   seed: int = 0) -> np.ndarray:
    """Positions ``0..n-1`` in the order a backfill embeds them (a permutation, int64).

    ``vectors`` (n, d), the items' stored old-version vectors, and ``labels`` (n,) are needed by
    ``uncertainty`` only; ``seed`` by ``random`` only.
    """
    check_policy(policy)
    if policy == SEQUENTIAL:
        return np.arange(n, dtype=np.int64)
    if policy == RANDOM:
        return np.random.default_rng(OrderSpec(policy, seed).seed).permutation(n).astype(np.int64)
    if vectors is None or np.asarray(vectors).shape[0] != n:
        raise InvalidInput(f"the uncertainty order needs the {n} items' stored vectors",
                           hint="pass vectors (n, d) of the old version")
    scores, _ = uncertainty_scores(vectors, labels)
    return np.argsort(-scores, kind="stable").astype(np.int64)
