"""Slow, obviously-correct twins of harmony.metrics, and seeded test data.

Every twin enumerates pairs explicitly in Python. Test data with exact distances: vectors with
entries +-1/8 in 64 dimensions are unit-norm and every dot product is a multiple of 1/64, exact
in float32 whatever the summation order, so fast and slow paths must agree bit for bit.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def exact_embeddings(n_ids: int, per_id: int, seed: int, flip: float = 0.25, d: int = 64):
    """(emb (n, 64) float32 with entries +-1/8, labels (n,)): identity centre + random sign flips."""
    rng = np.random.default_rng(seed)
    centres = rng.choice([-1.0, 1.0], size=(n_ids, d))
    labels = np.repeat(np.arange(n_ids), per_id)
    signs = centres[labels] * np.where(rng.random((labels.size, d)) < flip, -1.0, 1.0)
    return (signs / math.sqrt(d)).astype(np.float32), labels


def random_embeddings(n_ids: int, per_id: int, seed: int, noise: float = 0.8, d: int = 32):
    """(emb float32 unit-norm, labels): Gaussian identity centres + Gaussian noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_ids), per_id)
    x = rng.standard_normal((n_ids, d))[labels] + noise * rng.standard_normal((labels.size, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def pair_distance(a: np.ndarray, b: np.ndarray) -> float:
    """2 - 2 a.b clipped at 0, in float64 (exact for exact_embeddings)."""
    return max(2.0 - 2.0 * float(np.dot(a.astype(np.float64), b.astype(np.float64))), 0.0)


def brute_pairs(emb, labels, gallery=None):
    """(same distances, diff distances) by explicit enumeration: i<j, or i != j across versions."""
    same, diff = [], []
    n = len(labels)
    for i in range(n):
        for j in range(n):
            if (gallery is None and j <= i) or (gallery is not None and j == i):
                continue
            d = pair_distance(emb[i], (emb if gallery is None else gallery)[j])
            (same if labels[i] == labels[j] else diff).append(d)
    return same, diff


def brute_val(same: list[float], diff: list[float], far: float):
    """(val, t*, achieved far, true accepts, false accepts) straight from DESIGN section 2."""
    n_diff = len(diff)
    k = math.floor(Fraction(str(far)) * n_diff)
    t = math.inf if k >= n_diff else sorted(diff)[k]
    ta = sum(1 for d in same if d < t)
    fa = sum(1 for d in diff if d < t)
    return ta / len(same), t, fa / n_diff, ta, fa
