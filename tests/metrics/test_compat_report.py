"""compatibility_report / identification_report: assembled from the checked primitives."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from tests.metrics._metrics_twins import exact_embeddings

from harmony.errors import InvalidInput
from harmony.metrics import (MetricsWarning, compatibility_report, identification_report, knn_accuracy,
                             val_at_far)
from harmony.metrics.compat import split_gallery


@pytest.fixture(autouse=True)
def _no_zero_fa_noise():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricsWarning)
        yield


@pytest.fixture(scope="module")
def versions():
    old, lab = exact_embeddings(30, 5, seed=10)
    rng = np.random.default_rng(0)
    flips = np.where(rng.random(old.shape) < 0.1, -1.0, 1.0).astype(np.float32)
    near = old * flips  # a "new" version close to old: same sign pattern, 10% flipped
    unrelated, _ = exact_embeddings(30, 5, seed=11)  # independent identity centres
    return old, near, unrelated, lab


def test_report_is_the_2x2_table(versions):
    old, new, _, lab = versions
    fars = (1e-2, 1e-3)
    rep = compatibility_report(old, new, lab, fars, old_name="a", new_name="b")
    for row, f in zip(rep.rows, fars):
        assert row.old_old == val_at_far(old, lab, f)
        assert row.new_new == val_at_far(new, lab, f)
        assert row.new_old == val_at_far(new, lab, f, gallery=old)
        assert row.old_new == val_at_far(old, lab, f, gallery=new)
        assert row.compatible == (row.new_old.val >= row.old_old.val)
        assert row.new_old.val == row.old_new.val  # one image set: symmetric pair set
    assert (rep.n_images, rep.n_identities) == (150, 30)
    assert rep.row(1e-3) is rep.rows[1]
    with pytest.raises(InvalidInput, match="not measured"):
        rep.row(0.5)


def test_verdicts(versions):
    old, _, unrelated, lab = versions
    same = compatibility_report(old, old.copy(), lab)
    assert same.compatible == {1e-2: True, 1e-3: True}
    bad = compatibility_report(old, unrelated, lab)
    assert bad.compatible == {1e-2: False, 1e-3: False}
    assert all(r.new_old.val < 0.1 < r.old_old.val for r in bad.rows)


def test_as_dict(versions):
    old, new, _, lab = versions
    rep = compatibility_report(old, new, lab, (1e-2, 1.0))
    d = json.loads(json.dumps(rep.as_dict(), allow_nan=False))
    assert d["old"] == "v1" and d["rows"][1]["threshold_old_old"] is None
    assert {"val_old_old", "val_new_new", "val_new_old", "val_old_new", "compatible"} <= set(d["rows"][0])
    # the table itself is drawn by the CLI: tests/cli/test_tables.py


def test_one_record_three_views(versions):
    """The registry's cells and the migration report's before/cross/after rows are views of one row."""
    old, new, _, lab = versions
    rep = compatibility_report(old, new, lab, (1e-2, 1.0))
    for row, mig in zip(rep.rows, rep.verification()):
        cells = row.cells()
        assert (cells["old_old"], cells["new_new"], cells["new_old"], cells["old_new"]) == (
            row.old_old.val, row.new_new.val, row.new_old.val, row.old_new.val)
        assert {k: v for k, v in cells.items() if k not in ("old_old", "new_new", "new_old", "old_new")} == {
            k: v for k, v in row.as_dict().items() if k not in ("far", "compatible", "gain_recovered")}
        assert (mig["far"], mig["before"], mig["cross"], mig["after"], mig["compatible_here"]) == (
            row.far, row.old_old.val, row.new_old.val, row.new_new.val, row.compatible)
        assert mig["threshold_before"] == row.as_dict()["threshold_old_old"]
        assert (mig["n_same_pairs"], mig["n_diff_pairs"]) == (row.old_old.n_same, row.old_old.n_diff)
    json.dumps(rep.verification(), allow_nan=False)
    assert "n_pairs" not in rep.as_dict()  # a labelled set: pairs are all pairs, counted per row


def test_split_gallery_first_images_per_identity():
    lab = np.array(["b", "a", "b", "a", "a", "c", "b"])
    want = np.zeros(len(lab), bool)
    seen: dict[str, int] = {}
    for i, x in enumerate(lab):
        want[i] = seen.get(x, 0) < 2
        seen[x] = seen.get(x, 0) + 1
    assert split_gallery(lab, 2).tolist() == want.tolist()


def test_identification_report(versions):
    old, new, _, lab = versions
    rep = identification_report(old, new, lab, gallery_per_identity=1, ks=(1, 5))
    gal = split_gallery(lab, 1)
    assert (rep.n_gallery, rep.n_probes) == (30, 120)
    expect = [knn_accuracy(old[~gal], lab[~gal], old[gal], lab[gal], (1, 5)),
              knn_accuracy(new[~gal], lab[~gal], new[gal], lab[gal], (1, 5)),
              knn_accuracy(new[~gal], lab[~gal], old[gal], lab[gal], (1, 5))]
    assert [r.accuracy for r in rep.rows] == expect
    assert [(r.probe_version, r.gallery_version) for r in rep.rows] == [("v1", "v1"), ("v2", "v2"), ("v2", "v1")]
    json.dumps(rep.as_dict(), allow_nan=False)
    # its table (3 rows) is drawn by the CLI: tests/cli/test_tables.py
    assert identification_report(old, old.copy(), lab).compatible


@pytest.mark.parametrize("fn", [compatibility_report, identification_report])
def test_shape_mismatch(versions, fn):
    old, new, _, lab = versions
    with pytest.raises(InvalidInput, match="differs"):
        fn(old, new[:-1], lab)


def test_identification_needs_probes(versions):
    old, new, _, lab = versions
    with pytest.raises(InvalidInput, match="no probes"):
        identification_report(old, new, lab, gallery_per_identity=5)


def test_gain_recovered_definition():
    from harmony.metrics import gain_recovered

    assert gain_recovered(0.775, 0.782, 0.871) == pytest.approx(0.007 / 0.096)
    assert gain_recovered(0.8, 0.9, 0.9) == pytest.approx(1.0)
    assert gain_recovered(0.8, 0.7, 0.9) == pytest.approx(-1.0)  # worse than v1: negative, not hidden
    assert gain_recovered(0.9, 0.95, 0.9) is None  # v2 no better than v1: undefined
    assert gain_recovered(0.9, 0.95, 0.85) is None


def test_row_gain_recovered_matches_cells(versions):
    from harmony.metrics import gain_recovered

    old, new, _, lab = versions
    for row in compatibility_report(old, new, lab, (1e-2, 1e-1)).rows:
        assert row.gain_recovered == gain_recovered(row.old_old.val, row.new_old.val, row.new_new.val)
        assert row.as_dict()["gain_recovered"] == row.gain_recovered
        assert row.as_migration_dict()["gain_recovered"] == row.gain_recovered
