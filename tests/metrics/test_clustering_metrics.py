"""Clustering: pair counts vs explicit enumeration; the cut vs a naive average-linkage loop."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from tests.metrics._metrics_twins import random_embeddings

from harmony.errors import InvalidInput
from harmony.metrics import agglomerative_clusters, cluster_report, pairwise_precision_recall


def brute_pr(pred, labels):
    tp = n_pred = n_true = 0
    for i, j in itertools.combinations(range(len(pred)), 2):
        p, t = pred[i] == pred[j], labels[i] == labels[j]
        tp += p and t
        n_pred += p
        n_true += t
    return tp, n_pred, n_true


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pairwise_counts_match_enumeration(seed):
    rng = np.random.default_rng(seed)
    pred, lab = rng.integers(0, 8, 150), rng.integers(0, 10, 150).astype(str)
    r = pairwise_precision_recall(pred, lab)
    tp, n_pred, n_true = brute_pr(pred, lab)
    assert (r.n_correct_pairs, r.n_pred_pairs, r.n_true_pairs) == (tp, n_pred, n_true)
    assert r.precision == tp / n_pred and r.recall == tp / n_true
    assert r.f1 == pytest.approx(2 * tp / (n_pred + n_true))


def test_no_predicted_pairs_has_undefined_precision():
    r = pairwise_precision_recall([0, 1, 2, 3], [0, 0, 1, 1])
    assert math.isnan(r.precision) and r.recall == 0.0 and math.isnan(r.f1)


def naive_average_linkage(x, threshold):
    """Merge the closest pair of clusters (mean pairwise squared L2) while it is <= threshold."""
    d = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    clusters = [[i] for i in range(len(x))]
    while len(clusters) > 1:
        best = min(((float(d[np.ix_(a, b)].mean()), ia, ib) for (ia, a), (ib, b)
                    in itertools.combinations(enumerate(clusters), 2)))
        if best[0] > threshold:
            break
        _, ia, ib = best
        clusters[ia] = clusters[ia] + clusters[ib]
        del clusters[ib]
    return {frozenset(c) for c in clusters}


@pytest.mark.parametrize("threshold", [0.3, 0.8, 1.2])
def test_cut_matches_naive_average_linkage(threshold):
    x, _ = random_embeddings(6, 5, seed=3, noise=0.6, d=8)
    pred = agglomerative_clusters(x, threshold)
    got = {frozenset(np.flatnonzero(pred == c).tolist()) for c in np.unique(pred)}
    assert got == naive_average_linkage(x, threshold)


def test_report_on_separated_identities():
    x, lab = random_embeddings(10, 6, seed=4, noise=0.05, d=16)
    rep = cluster_report(x, lab, threshold=0.5)
    assert (rep.n_clusters, rep.n_identities, rep.n_singletons) == (10, 10, 0)
    assert rep.scores.precision == 1.0 and rep.scores.recall == 1.0
    json.dumps(rep.as_dict(), allow_nan=False)


def test_invalid_input():
    x, lab = random_embeddings(3, 3, seed=0)
    with pytest.raises(InvalidInput, match="threshold"):
        agglomerative_clusters(x, -1.0)
    with pytest.raises(InvalidInput, match="clustering limit"):
        agglomerative_clusters(x, 0.5, max_n=5)
    with pytest.raises(InvalidInput, match="1-D"):
        pairwise_precision_recall(np.zeros((3, 3)), lab[:3])
    with pytest.raises(InvalidInput, match="entries for"):
        cluster_report(x, lab[:-1], 0.5)
