"""The backfill curve (curve.py): area math, every point against a brute-force pair enumeration,
agreement with the product's mixed search mid-backfill, and the plot."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harmony.errors import InvalidInput
from harmony.gallery.synthetic import HashEmbedder, clustered_unit_vectors, normalise
from harmony.metrics import val_at_far
from harmony.migration.backfill import run_backfill
from harmony.migration.curve import (
    backfill_curve,
    backfilled_count,
    curve_fractions,
    mixed_vectors,
    order_curves,
    plot_backfill_curves,
    trapezoid_area,
)
from harmony.migration.gate import Measured, VerdictView
from harmony.migration.mixed_search import mixed_search
from harmony.migration.order import OrderSpec, backfill_order

DIM = 32


def two_versions(n_ids: int = 8, per: int = 5, dim: int = 16, seed: int = 0):
    """old: noisy copies of identity centres; new: the same centres, less noise (a better model)."""
    rng = np.random.default_rng(seed)
    centres = normalise(rng.standard_normal((n_ids, dim)))
    labels = np.repeat(np.arange(n_ids), per)
    old = normalise(centres[labels] + rng.standard_normal((labels.size, dim)) * 0.45)
    new = normalise(centres[labels] + rng.standard_normal((labels.size, dim)) * 0.25)
    return old, new, labels.astype(str)


def brute_top1(probe: np.ndarray, gallery: np.ndarray, labels: np.ndarray) -> float:
    d = 2.0 - 2.0 * probe.astype(np.float64) @ gallery.astype(np.float64).T
    np.fill_diagonal(d, np.inf)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    counted = same.any(axis=1)
    best_right = np.where(same, d, np.inf).min(axis=1)
    wrong_closer = (np.where(~same, d, np.inf) <= best_right[:, None]).sum(axis=1)  # ties count against
    return float((wrong_closer[counted] == 0).mean())


def brute_val(probe: np.ndarray, gallery: np.ndarray, labels: np.ndarray, far: float) -> float:
    """DESIGN section 2 by hand over the ordered pairs (i, j), i != j, D(probe_i, gallery_j)."""
    d = np.maximum(2.0 - 2.0 * probe @ gallery.T, 0.0).astype(np.float32)
    off = ~np.eye(len(labels), dtype=bool)
    same = (labels[:, None] == labels[None, :]) & off
    diff = (labels[:, None] != labels[None, :])
    dd = np.sort(d[diff])
    k = math.floor(far * dd.size)
    t = dd[k] if k < dd.size else np.inf
    return float((d[same] < t).mean())


def test_trapezoid_area_and_counts_by_hand():
    assert trapezoid_area([0, 0.5, 1], [0, 1, 1]) == pytest.approx(0.75)  # 0.25 + 0.5
    assert trapezoid_area([0, 1], [0.2, 0.6]) == pytest.approx(0.4)
    with pytest.raises(InvalidInput, match="strictly increasing"):
        trapezoid_area([0, 0, 1], [1, 1, 1])
    np.testing.assert_allclose(curve_fractions(4), [0, 0.25, 0.5, 0.75, 1])
    assert [backfilled_count(f, 25) for f in (0.0, 0.1, 0.3, 1.0)] == [0, 3, 8, 25]  # floor(f n + 1/2)
    with pytest.raises(InvalidInput, match="steps must be an integer"):
        curve_fractions(0)
    old, new = np.zeros((3, 2), np.float32), np.ones((3, 2), np.float32)
    np.testing.assert_array_equal(mixed_vectors(old, new, np.array([2, 0, 1]), 2), [[1, 1], [0, 0], [1, 1]])


def test_every_point_equals_a_brute_force_enumeration():
    old, new, labels = two_versions()
    order = backfill_order("random", len(labels), seed=3)
    c = backfill_curve(old, new, labels, order, far=0.05, steps=5, name="random")
    assert c.fractions == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    for f, top1, val in zip(c.fractions, c.top1, c.val):
        g = mixed_vectors(old, new, order, backfilled_count(f, len(labels)))
        assert top1 == brute_top1(new, g, labels), f
        assert val == pytest.approx(brute_val(new, g, labels, 0.05), abs=1e-12), f
    assert c.val[0] == val_at_far(new, labels, 0.05, gallery=old).val  # VAL(new->old)
    assert c.val[-1] == val_at_far(new, labels, 0.05, gallery=new).val  # VAL(new,new)
    assert c.auc_top1 == pytest.approx(trapezoid_area(c.fractions, c.top1))
    assert c.auc_val == pytest.approx(sum((a + b) / 2 * 0.2 for a, b in zip(c.val, c.val[1:])))


def test_the_curve_agrees_with_the_products_mixed_search_mid_backfill(make_gallery):
    g = make_gallery(60)
    v2 = HashEmbedder("v2", DIM, drift_from="v1")
    run_backfill(g.store, "v2", v2, batch_size=6, stop_after=3, order=OrderSpec("random", 4))  # 18 of 60 = 30%
    t = g.store.items()
    names, labels = [str(s) for s in t.item_ids], t.labels.astype(str)
    old, new = g.direct("v1", names), g.direct("v2", names, drift_from="v1")
    verdict = VerdictView("v2", "v1", 1e-3, True, (Measured(1, 1e-3, "synthetic", True, 0.9, 0.92),))
    hits = mixed_search(g.store, new, 2, "v2", verdict=verdict)
    counted = [i for i in range(60) if (labels == labels[i]).sum() > 1]
    nearest_other = [next(h for h in hits[i] if h.item_id != names[i]) for i in counted]
    product_top1 = np.mean([h.label == labels[i] for h, i in zip(nearest_other, counted)])
    assert sum(h.version == "v2" for row in hits for h in row) > 0  # really mixed
    c = backfill_curve(old, new, labels, backfill_order("random", 60, seed=4), steps=10)
    assert c.fractions[3] == 0.3 and c.top1[3] == pytest.approx(product_top1)


def test_uncertainty_beats_random_where_some_stored_vectors_are_misplaced():
    """A fifth of the old vectors sit on another identity's centre; uncertainty must find them first."""
    old, labels, centres = clustered_unit_vectors(300, 16, 30, spread=0.5, seed=1)
    new = normalise(centres[labels] + np.random.default_rng(2).standard_normal(old.shape) * 0.1)
    bad = np.random.default_rng(3).choice(300, 60, replace=False)
    old[bad] = normalise(centres[(labels[bad] + 1) % 30] + np.random.default_rng(4).standard_normal((60, 16)) * 0.05)
    rep = order_curves(old, new, labels.astype(str), ("random", "uncertainty", "sequential"), seed=0, far=1e-2)
    u, r = rep.curve("uncertainty"), rep.curve("random")
    order = backfill_order("uncertainty", 300, old, labels.astype(str))
    assert sorted(labels[order[:30]]) == list(range(30))  # one new vector per identity first
    assert len(set(order[30:90]) & set(bad)) >= 55  # then the misplaced stored vectors
    assert u.auc_top1 > r.auc_top1 + 0.1 and u.auc_val > r.auc_val + 0.03  # measured +0.18, +0.049
    d = rep.uncertainty_vs_random()
    assert d["auc_top1"] == pytest.approx(u.auc_top1 - r.auc_top1)
    assert rep.score == "identity-centres" and rep.n_probes == 300
    out = rep.as_dict()
    assert [c["order"] for c in out["curves"]] == ["random", "uncertainty", "sequential"]
    assert len(out["curves"][0]["top1"]) == 11 and out["uncertainty_minus_random"] == d


def test_bad_inputs_are_one_line_errors():
    old, new, labels = two_versions(3, 2)
    with pytest.raises(InvalidInput, match="permutation"):
        backfill_curve(old, new, labels, np.zeros(6, np.int64))
    with pytest.raises(InvalidInput, match="differ in shape"):
        backfill_curve(old, new[:5], labels, np.arange(6))
    with pytest.raises(InvalidInput, match="at least two identities"):
        backfill_curve(old, new, np.array(["a"] * 6), np.arange(6))
    with pytest.raises(InvalidInput, match="two or more items"):
        backfill_curve(old[:3], new[:3], np.array(["a", "b", "c"]), np.arange(3))
    with pytest.raises(InvalidInput, match="unknown backfill order"):
        order_curves(old, new, labels, ("sideways",))


def test_plot_writes_a_png_atomically(tmp_path):
    old, new, labels = two_versions()
    rep = order_curves(old, new, labels, seed=1, far=0.05, steps=4)
    out = plot_backfill_curves(rep, tmp_path / "curve.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and [p.name for p in tmp_path.iterdir()] == ["curve.png"]
