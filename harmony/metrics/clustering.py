"""Face clustering by agglomerative (average-linkage) merging, scored by pairwise precision/recall.

Clusters: scipy's hierarchical clustering with average linkage on squared L2 distances, cut at
``threshold`` (two groups merge while their mean pairwise distance is <= threshold). Needs the
condensed distance matrix, ``8 n (n-1) / 2`` bytes, hence the ``max_n`` guard.

Scores count pairs: a pair is predicted-together when both items share a cluster, truly-together
when both share an identity. Counted from the contingency table (sum of C(n_ij, 2)), never by
enumerating the O(n^2) pairs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harmony.errors import InvalidInput
from harmony.metrics._checks import as_embeddings, as_labels, warn_if_not_unit

MAX_N = 20_000  # 1.6 GB of float64 condensed distances


@dataclass(frozen=True)
class PairwisePR:
    """Pair counts and scores; precision is NaN when no pair is predicted together."""

    precision: float
    recall: float
    f1: float
    n_true_pairs: int
    n_pred_pairs: int
    n_correct_pairs: int


@dataclass(frozen=True)
class ClusterReport:
    threshold: float
    n_items: int
    n_identities: int
    n_clusters: int
    n_singletons: int
    scores: PairwisePR

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["scores"] = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                       for k, v in d["scores"].items()}
        return d


def _pairs(counts: np.ndarray) -> int:
    c = counts.astype(object)
    return int((c * (c - 1) // 2).sum())


def pairwise_precision_recall(pred: Any, labels: Any) -> PairwisePR:
    """Pairwise precision/recall/F1 of a predicted clustering against identity labels."""
    p = np.asarray(pred)
    if p.ndim != 1:
        raise InvalidInput(f"pred must be 1-D, got shape {p.shape}", hint="pass one cluster id per item")
    y = as_labels(labels, p.shape[0], "labels")
    _, pc = np.unique(p, return_inverse=True)
    _, yc = np.unique(y, return_inverse=True)
    pc, yc = pc.reshape(-1).astype(np.int64), yc.reshape(-1).astype(np.int64)
    _, cell = np.unique(pc * (int(yc.max(initial=0)) + 1) + yc, return_counts=True)
    tp = _pairs(cell)
    n_pred = _pairs(np.bincount(pc)) if p.size else 0
    n_true = _pairs(np.bincount(yc)) if p.size else 0
    precision = tp / n_pred if n_pred else math.nan
    recall = tp / n_true if n_true else math.nan
    if math.isnan(precision) or math.isnan(recall):
        f1 = math.nan
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return PairwisePR(precision=precision, recall=recall, f1=f1, n_true_pairs=n_true,
                      n_pred_pairs=n_pred, n_correct_pairs=tp)


def agglomerative_clusters(emb: Any, threshold: float, *, max_n: int = MAX_N) -> np.ndarray:
    """Cluster ids ``(n,)`` int64 (0-based) from average linkage on squared L2, cut at threshold."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    x = as_embeddings(emb, "emb")
    if not math.isfinite(threshold) or threshold < 0:
        raise InvalidInput(f"threshold must be a finite distance >= 0, got {threshold}",
                           hint="use a squared L2 threshold such as VAL@FAR's t*")
    n = x.shape[0]
    if n > max_n:
        raise InvalidInput(f"{n} embeddings exceed the clustering limit of {max_n} "
                           f"({8 * n * (n - 1) // 2 / 1e9:.1f} GB of distances)",
                           hint="cluster a sample, or raise max_n on a machine with the memory")
    warn_if_not_unit(x, "emb")
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    z = linkage(pdist(x.astype(np.float64), "sqeuclidean"), method="average")
    return fcluster(z, t=float(threshold), criterion="distance").astype(np.int64) - 1


def cluster_report(emb: Any, labels: Any, threshold: float, *, max_n: int = MAX_N) -> ClusterReport:
    """Cluster ``emb`` at ``threshold`` and score the clusters against ``labels``."""
    pred = agglomerative_clusters(emb, threshold, max_n=max_n)
    y = as_labels(labels, pred.shape[0], "labels")
    sizes = np.bincount(pred)
    return ClusterReport(threshold=float(threshold), n_items=int(pred.size),
                         n_identities=int(np.unique(y).size), n_clusters=int(sizes.size),
                         n_singletons=int((sizes == 1).sum()),
                         scores=pairwise_precision_recall(pred, y))
