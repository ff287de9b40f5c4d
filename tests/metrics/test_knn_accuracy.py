"""knn_accuracy against a per-probe sorted list (ties resolved against the probe)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.metrics._metrics_twins import exact_embeddings, pair_distance, random_embeddings

from harmony.errors import InvalidInput
from harmony.metrics import identification, knn_accuracy


def brute_knn(probe, pl, gallery, gl, ks, exclude_self=False):
    hits = {k: 0 for k in ks}
    for i in range(len(pl)):
        ranked = sorted(
            ((pair_distance(probe[i], gallery[j]), gl[j] == pl[i]) for j in range(len(gl))
             if not (exclude_self and j == i)),
            key=lambda t: (t[0], t[1]))  # at equal distance the wrong item ranks first
        first_right = next((r for r, (_, ok) in enumerate(ranked) if ok), None)
        for k in ks:
            hits[k] += first_right is not None and first_right < k
    return {k: hits[k] / len(pl) for k in ks}


@pytest.mark.parametrize("maker, seed", [(exact_embeddings, 1), (random_embeddings, 2)])
def test_matches_brute_force(maker, seed, monkeypatch):
    emb, lab = maker(20, 4, seed=seed)
    gal = np.arange(len(lab)) % 4 == 0
    ks = (1, 2, 5)
    want = brute_knn(emb[~gal], lab[~gal], emb[gal], lab[gal], ks)
    assert knn_accuracy(emb[~gal], lab[~gal], emb[gal], lab[gal], ks) == want
    monkeypatch.setattr(identification, "_BLOCK_ELEMS", 7 * 20)  # 7-row blocks
    assert knn_accuracy(emb[~gal], lab[~gal], emb[gal], lab[gal], ks) == want


def test_exclude_self_leave_one_out():
    emb, lab = exact_embeddings(15, 3, seed=4)
    want = brute_knn(emb, lab, emb, lab, (1, 3), exclude_self=True)
    assert knn_accuracy(emb, lab, emb, lab, (1, 3), exclude_self=True) == want
    assert knn_accuracy(emb, lab, emb, lab, (1,)) == {1: 1.0}  # without exclusion each finds itself


def test_ties_count_against_the_probe():
    e = np.eye(3, dtype=np.float32)
    gallery, gl = np.stack([e[0], e[0]]), np.array(["wrong", "right"])
    acc = knn_accuracy(e[:1], np.array(["right"]), gallery, gl, (1, 2))
    assert acc == {1: 0.0, 2: 1.0}


def test_probe_identity_absent_from_gallery_is_a_miss():
    e = np.eye(3, dtype=np.float32)
    assert knn_accuracy(e[:2], [0, 9], e, [0, 1, 2], (1, 3)) == {1: 0.5, 3: 0.5}


@pytest.mark.parametrize("kwargs, match", [
    (dict(gallery=np.ones((4, 5), np.float32)), "dimension"),
    (dict(ks=(0,)), "positive"),
    (dict(ks=()), "positive"),
    (dict(gallery_labels=[0, 1]), "entries for"),
    (dict(exclude_self=True), "same set"),
])
def test_invalid_input(kwargs, match):
    e = np.eye(4, dtype=np.float32)
    base = dict(probe=e[:3], probe_labels=[0, 1, 2], gallery=e, gallery_labels=[0, 1, 2, 3])
    base.update(kwargs)
    with pytest.raises(InvalidInput, match=match):
        knn_accuracy(**base)
