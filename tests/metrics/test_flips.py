"""flip_report against a brute-force Python loop over explicit distances (several seeds), ties, edges."""

from __future__ import annotations

import numpy as np
import pytest
from tests.metrics._metrics_twins import exact_embeddings, pair_distance, random_embeddings

from harmony.errors import InvalidInput
from harmony.metrics import identification_report
from harmony.metrics.flips import check_rate, flip_report


def brute_right(probe, gallery, probe_label, gallery_labels) -> bool:
    """Top-1 right: the nearest right-identity item is strictly closer than every wrong one."""
    right = [pair_distance(probe, g) for g, l in zip(gallery, gallery_labels) if l == probe_label]
    wrong = [pair_distance(probe, g) for g, l in zip(gallery, gallery_labels) if l != probe_label]
    return bool(right) and all(min(right) < w for w in wrong)


def brute_flips(old, new, labels, per_id=1):
    """(probe indices, flipped-new indices, flipped-cross indices) by explicit loops."""
    seen: dict = {}
    gal, probes = [], []
    for i, lab in enumerate(labels):
        seen[lab] = seen.get(lab, 0) + 1
        (gal if seen[lab] <= per_id else probes).append(i)
    gl = [labels[j] for j in gal]
    new_f, cross_f = [], []
    for i in probes:
        before = brute_right(old[i], [old[j] for j in gal], labels[i], gl)
        if before and not brute_right(new[i], [new[j] for j in gal], labels[i], gl):
            new_f.append(i)
        if before and not brute_right(new[i], [old[j] for j in gal], labels[i], gl):
            cross_f.append(i)
    return probes, new_f, cross_f


def perturbed(maker, seed, n_ids=12, per_id=5):
    old, lab = maker(n_ids, per_id, seed=seed)
    rng = np.random.default_rng(seed + 100)
    if maker is exact_embeddings:  # flip signs: stays exact (entries +-1/8)
        new = old * np.where(rng.random(old.shape) < 0.2, -1.0, 1.0).astype(np.float32)
    else:
        new = old + 0.5 * rng.standard_normal(old.shape).astype(np.float32)
        new /= np.linalg.norm(new, axis=1, keepdims=True)
    rng.shuffle(perm := np.arange(len(lab)))  # identities interleaved, not in blocks
    return old[perm], new[perm], lab[perm]


@pytest.mark.parametrize("maker", [exact_embeddings, random_embeddings])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force(maker, seed):
    old, new, lab = perturbed(maker, seed)
    for per_id in (1, 2):
        probes, want_new, want_cross = brute_flips(old, new, lab, per_id)
        rep = flip_report(old, new, lab, per_id, old_name="a", new_name="b")
        assert rep.n_queries == len(probes) and rep.n_gallery == len(lab) - len(probes)
        assert list(rep.new.ids) == want_new and list(rep.cross.ids) == want_cross
        assert rep.new.n_flips == len(want_new) and rep.new.rate == len(want_new) / len(probes)
        assert dict(rep.cross.per_identity) == {str(k): v for k, v in
                                                zip(*np.unique(lab[want_cross], return_counts=True))}
        assert (rep.new.probe_version, rep.new.gallery_version) == ("b", "b")
        assert (rep.cross.probe_version, rep.cross.gallery_version) == ("b", "a")
        # the baseline's right answers are identification_report's old->old top-1
        ident = identification_report(old, new, lab, per_id, (1,))
        assert rep.n_old_correct == round(ident.rows[0].accuracy[1] * rep.n_queries)
    assert maker is random_embeddings or want_new or want_cross  # the perturbation does flip some


def test_item_ids_and_per_identity_order():
    old, new, lab = perturbed(random_embeddings, 5, n_ids=8, per_id=6)
    names = np.array([f"person{x}" for x in lab])
    ids = [f"item-{i:03d}" for i in range(len(lab))]
    rep = flip_report(old, new, names, ids=ids)
    by_index = flip_report(old, new, names)
    assert list(rep.cross.ids) == [ids[i] for i in by_index.cross.ids]
    counts = [c for _, c in rep.cross.per_identity]
    assert counts == sorted(counts, reverse=True) and sum(counts) == rep.cross.n_flips
    assert all(name.startswith("person") for name, _ in rep.cross.per_identity)
    d = rep.as_dict()
    assert d["cross_flips"]["ids"] == list(rep.cross.ids) and d["n_queries"] == rep.n_queries
    assert d["cross_flips"]["rate"] == rep.cross.rate


def test_a_tie_is_a_miss_so_an_old_hit_tied_by_new_flips():
    # 2-D unit vectors: gallery A at angle 0, B at 90 degrees; probes of A
    e = lambda deg: [np.cos(np.radians(deg)), np.sin(np.radians(deg))]  # noqa: E731
    old = np.array([e(0), e(90), e(10), e(20)], np.float32)
    new = np.array([e(0), e(90), e(45), e(10)], np.float32)  # probe 2 lands exactly half-way: a tie
    lab = np.array(["A", "B", "A", "A"])
    rep = flip_report(old, new, lab)
    assert rep.n_queries == 2 and rep.n_old_correct == 2
    assert list(rep.new.ids) == [2]  # equidistant from A and B: wrong, as knn_accuracy counts it
    cross = flip_report(old, old, lab)
    assert cross.new.n_flips == 0 and cross.cross.n_flips == 0


def test_nothing_flips_when_new_equals_old_and_all_flip_when_new_is_wrong():
    old, lab = exact_embeddings(10, 4, seed=3, flip=0.05)
    rep = flip_report(old, old.copy(), lab)
    assert rep.new.n_flips == rep.cross.n_flips == 0 and rep.new.per_identity == () and rep.over(0.0) == []
    # new maps every probe onto the next identity's centre: every old hit flips
    gal = np.arange(len(lab)) % 4 == 0
    new = old.copy()
    new[~gal] = old[gal][(lab[~gal] + 1) % 10]
    rep = flip_report(old, new, lab)
    assert rep.new.n_flips == rep.n_old_correct == rep.cross.n_flips > 0
    assert [s.gallery_version for s in rep.over(0.5)] == ["v2", "v1"]


def test_bad_inputs():
    old, lab = exact_embeddings(4, 3, seed=0)
    with pytest.raises(InvalidInput, match="no probes"):
        flip_report(old, old, lab, gallery_per_identity=3)
    with pytest.raises(InvalidInput, match="ids has 2 entries for 12"):
        flip_report(old, old, lab, ids=["a", "b"])
    with pytest.raises(InvalidInput, match="shape"):
        flip_report(old, old[:, :8], lab)
    with pytest.raises(InvalidInput, match="gallery_per_identity"):
        flip_report(old, old, lab, gallery_per_identity=0)
    with pytest.raises(InvalidInput, match="labels has 3 entries"):
        flip_report(old, old, lab[:3])


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.1", True, None])
def test_check_rate(bad):
    assert check_rate(0) == 0.0 and check_rate(1) == 1.0 and check_rate(0.02, "--max-flip-rate") == 0.02
    with pytest.raises(InvalidInput, match=r"--max-flip-rate must be a number in \[0, 1\]"):
        check_rate(bad, "--max-flip-rate")
