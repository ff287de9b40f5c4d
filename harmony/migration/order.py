"""Backfill order: which items a backfill re-embeds first. Pure functions over numpy arrays.

Policies (``POLICIES``):

- ``sequential``: the items' change order (the gallery's seq counter), oldest change first.
- ``random``: a permutation drawn from ``numpy.random.default_rng(seed)``; the seed is recorded
  with the backfill, so a resumed backfill continues in the same order.
- ``uncertainty``: the items whose stored (old-version) vectors are least trustworthy first, a
  heuristic in the spirit of FastFill (which learns this score). Two scores, chosen by the data:

  - ``identity-centres`` (items carry identities): with ``c_y`` the L2-normalised mean old vector
    of identity ``y``, ``score_i = D(x_i, c_own) - min over other identities y of D(x_i, c_y)``:
    high when the item lies far from its own identity's centre and close to another's. Needs at
    least two identities.
  - ``neighbour-margin`` (no usable identities): with ``D1 <= D2`` the distances to the item's two
    nearest other items, ``score_i = D1 - D2`` (the negated margin): high when the item is as
    close to its second neighbour as to its first, i.e. its nearest match is ambiguous.

  Higher score goes first; equal scores keep the input order. Distances are squared L2 of unit
  vectors (``harmony.distances``); nearest centres / neighbours come from the FAISS wrapper
  (``harmony.gallery.index``), flat and exact.

Every policy is deterministic given its inputs and seed. Callers pass the items in seq order;
the result is a permutation of positions into those arrays. Cost of the uncertainty scores
(exact, flat FAISS): n x identities x d for identity centres, n^2 x d for the neighbour margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harmony.errors import InvalidInput

SEQUENTIAL, RANDOM, UNCERTAINTY = "sequential", "random", "uncertainty"
POLICIES = (SEQUENTIAL, RANDOM, UNCERTAINTY)
CENTRES, MARGIN = "identity-centres", "neighbour-margin"
SCORES = (CENTRES, MARGIN)
SCORE_TEXT = {CENTRES: "distance to the item's identity centre minus distance to the nearest other identity's centre",
              MARGIN: "distance to the nearest other item minus distance to the second nearest (no identities)"}


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
    """Which uncertainty score the labels allow: identity centres when every item has a non-empty
    identity and there are at least two identities, the neighbour margin otherwise."""
    if labels is None or len(labels) == 0:
        return MARGIN
    lab = np.asarray(labels).astype(str)
    if (lab == "").any() or np.unique(lab).size < 2:
        return MARGIN
    return CENTRES


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _nearest(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of ``base`` per query: squared L2 ``(nq, k)`` and positions (-1 = none)."""
    from harmony.gallery import index as fx

    index = fx.make_index(base.shape[1], "flat")
    fx.add(index, np.arange(base.shape[0], dtype=np.int64), base)
    return fx.search(index, queries, min(k, base.shape[0]))


def centre_scores(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``D(x_i, c_own) - min_{y != own} D(x_i, c_y)`` per item (see the module doc)."""
    x = _unit(vectors)
    names, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    if names.size < 2:
        raise InvalidInput("the identity-centre score needs at least two identities",
                           hint="use the neighbour-margin score (uncertainty_scores picks it)")
    sums = np.zeros((names.size, x.shape[1]), np.float64)
    np.add.at(sums, codes, x)
    centres = _unit(sums)
    own = np.maximum(2.0 - 2.0 * np.einsum("ij,ij->i", x, centres[codes]), 0.0)
    D, I = _nearest(centres, x, 2)
    other = np.where(I[:, 0] != codes, D[:, 0], D[:, 1])
    return (own - other).astype(np.float64)


def margin_scores(vectors: np.ndarray) -> np.ndarray:
    """``D1 - D2`` over each item's two nearest other items (0 for fewer than three items)."""
    x = _unit(vectors)
    n = x.shape[0]
    if n < 3:
        return np.zeros(n, np.float64)
    D, I = _nearest(x, x, 3)
    not_self = I != np.arange(n)[:, None]
    # the item itself is among its 3 nearest (distance 0) unless duplicates tie with it; drop it by id
    keep = np.where(not_self.sum(axis=1, keepdims=True) == 3, np.arange(3) < 2, not_self)
    d = D[keep].reshape(n, 2)
    return (d[:, 0] - d[:, 1]).astype(np.float64)


def uncertainty_scores(vectors: np.ndarray, labels: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """(score per item, the score's name): higher = less trustworthy stored vector."""
    x = np.asarray(vectors)
    if x.ndim != 2 or (labels is not None and len(labels) != x.shape[0]):
        raise InvalidInput(f"uncertainty needs (n, d) vectors and n labels, got {x.shape} and "
                           f"{None if labels is None else len(labels)}", hint="pass one label per vector")
    method = uncertainty_method(labels)
    if method == CENTRES:
        return centre_scores(x, labels), method
    return margin_scores(x), method


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
