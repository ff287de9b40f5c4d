"""evaluate(): the figures come from the right embeddings, labels and pairs; the registry records
them; the verdict follows the BCT rule; bad requests are typed errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harmony.data.datamodule import LabelledImages
from harmony.data.images import load_images
from harmony.data.synthetic import SynthConfig, render_set
from harmony.errors import Incompatible, InvalidInput, NotFound
from harmony.evaluation import evaluate, folder_set, lfw_pairs_set, synthetic_set
from harmony.metrics import knn_accuracy, lfw_protocol, val_at_far
from harmony.models.encode import encode_array
from harmony.migration.gate import verdict_view
from tests.evaluation.conftest import write_faces

FARS = (0.1, 0.01)


def brute_top1(probe, probe_labels, gallery, gallery_labels):
    """Top-1 by an explicit loop: hit when the nearest gallery item (ties against) is right."""
    hits = 0
    for p, y in zip(probe, probe_labels):
        d = [float(np.sum((p - g) ** 2)) for g in gallery]
        best_right = min(dd for dd, gy in zip(d, gallery_labels) if gy == y)
        hits += not any(dd <= best_right for dd, gy in zip(d, gallery_labels) if gy != y)
    return hits / len(probe)


@pytest.mark.filterwarnings("ignore::harmony.metrics.MetricsWarning")
def test_labelled_set_figures_and_records(reg, add_tiny):
    m1, m2 = add_tiny("v1", seed=0), add_tiny("v2", seed=1)
    res = evaluate(reg, "v2", "v1", synthetic_set(8, 3), fars=FARS, progress=None)

    images, labels = render_set(8, 3, "test", SynthConfig(image_size=32, seed=0))
    e1, e2 = encode_array(m1, images), encode_array(m2, images)
    assert res.dataset == "synthetic:test:seed0:8x3:32px" and res.kind == "labelled"
    assert (res.n_images, res.n_identities) == (24, 8)
    assert [v.name for v in res.versions] == ["v2", "v1"]
    for v, e in zip(res.versions, (e2, e1)):
        want = val_at_far(e, labels, list(FARS))
        assert [x.val for x in v.val] == [w.val for w in want]  # same embeddings, same order, same labels
        assert v.top_k == knn_accuracy(e, labels, e, labels, (1, 5), exclude_self=True)
        assert v.clustering.n_items == 24
        assert v.clustering.threshold == val_at_far(e, labels, 1e-3).threshold

    # the identification split: gallery = first image per identity by v1, probes = the rest by v2
    gal = np.arange(24) % 3 == 0
    assert res.identification.cross.accuracy[1] == pytest.approx(
        brute_top1(e2[~gal], labels[~gal], e1[gal], labels[gal]), abs=0.05)
    assert (res.identification.n_gallery, res.identification.n_probes) == (8, 16)

    # registry: one evaluation per version, a cross row, a compatibility row per FAR
    evs = reg.evaluations()
    assert [(e["version"], e["against"]) for e in evs] == [("v2", None), ("v1", None), ("v2", "v1")]
    assert list(res.evaluation_ids) == [e["id"] for e in evs]
    assert evs[0]["metrics"]["val@0.1"] == res.versions[0].val[0].val
    assert evs[0]["dataset"] == res.dataset and evs[0]["metrics"]["n_images"] == 24
    assert set(evs[2]["metrics"]) >= {"compatibility", "identification"}
    rows = reg.compatibility("v2", "v1")
    assert sorted(c.far for c in rows) == sorted(FARS)
    for c in rows:
        r = res.compat.row(c.far)
        assert c.table["old_old"] == r.old_old.val and c.table["new_old"] == r.new_old.val
        assert c.compatible == (r.new_old.val >= r.old_old.val) == verdict_view(reg, "v2", "v1", c.far).verdict


def test_a_copy_of_a_version_is_compatible_with_it(reg, add_tiny):
    add_tiny("v1", seed=3)
    add_tiny("v1-copy", seed=3)
    res = evaluate(reg, "v1-copy", "v1", synthetic_set(8, 3), fars=FARS, progress=None)
    assert all(res.compatible.values())
    for row in res.compat.rows:
        assert row.new_old.val == pytest.approx(row.old_old.val, abs=1e-9)
    assert verdict_view(reg, "v1-copy", "v1", 0.01).verdict is True


def test_labelled_images_without_against_and_a_plot(tmp_path, reg, add_tiny):
    add_tiny("v1")
    images, labels = render_set(6, 3, "test", SynthConfig(image_size=32, seed=5))
    data = LabelledImages(images, labels, "synthetic:test:seed5:6x3:32px")
    png = tmp_path / "out" / "curves.png"
    res = evaluate(reg, "v1", data=data, fars=(0.05,), plot=png, progress=None)
    assert res.compat is None and res.identification is None and res.dataset == data.key
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [e["version"] for e in reg.evaluations()] == ["v1"]
    assert reg.query("SELECT count(*) FROM compatibility")[1] == [(0,)]


def test_unreadable_files_are_listed_and_skipped(tmp_path, reg, add_tiny):
    root = tmp_path / "faces"
    paths = write_faces(root, 4, 3)
    paths[1].write_bytes(b"\x89PNG broken")
    add_tiny("v1")
    res = evaluate(reg, "v1", data=folder_set(root), fars=FARS, progress=None)
    assert res.unreadable == (str(paths[1].absolute()),)
    assert res.n_images == 11 and res.n_identities == 4


def lfw_fixture(tmp_path: Path, missing: bool = False) -> tuple[Path, Path]:
    """6 identities x 3 images under LFW naming and a 10-fold pairs.txt (1 matched + 1 mismatched
    pair per fold); with ``missing``, one pair names an image that does not exist."""
    root = tmp_path / "lfw"
    write_faces(root, 6, 3, lfw_names=True)
    lines = ["10\t1"]
    for f in range(10):
        a, b = f % 6, (f + 1) % 6
        lines.append(f"person{a:02d}\t{1 + f % 3}\t{1 + (f + 1) % 3}")
        lines.append(f"person{a:02d}\t{1 + f % 3}\tperson{b:02d}\t{1 + (f + 2) % 3}")
    if missing:
        lines[1] = "person00\t1\t7"  # person00_0007.png does not exist
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    return root, pairs


def test_lfw_pairs_match_a_direct_computation(tmp_path, reg, add_tiny):
    m1, m2 = add_tiny("v1", seed=0), add_tiny("v2", seed=1)
    root, pairs = lfw_fixture(tmp_path)
    res = evaluate(reg, "v2", "v1", lfw_pairs_set(pairs, root), fars=FARS, progress=None)
    assert res.kind == "pairs" and res.n_pairs == 20 and res.n_identities is None
    assert res.compat.n_pairs == 20 and res.compat.n_identities is None  # the record says what it counted

    from harmony.metrics import read_lfw_pairs

    ps = read_lfw_pairs(pairs, root)
    a_img = load_images([p.path_a for p in ps.pairs], 32).images
    b_img = load_images([p.path_b for p in ps.pairs], 32).images

    def dist(x, y):
        return np.array([max(2.0 - 2.0 * float(np.dot(u, w)), 0.0) for u, w in zip(x, y)])

    same, folds = ps.same, ps.folds
    d1 = dist(encode_array(m1, a_img), encode_array(m1, b_img))
    want = lfw_protocol(d1, same, folds, far=FARS[0])
    got = res.versions[1].lfw
    assert got.n_folds == 10 and got.accuracy_mean == pytest.approx(want.accuracy_mean, abs=0.051)
    d_cross = dist(encode_array(m2, a_img), encode_array(m1, b_img))  # new(a) vs old(b)
    assert res.cross_lfw.accuracy_mean == pytest.approx(lfw_protocol(d_cross, same, folds).accuracy_mean, abs=0.051)
    assert [c.far for c in reg.compatibility("v2", "v1")] == sorted(FARS)
    assert reg.evaluations("v1")[0]["metrics"]["lfw_accuracy_mean"] == got.accuracy_mean


def test_missing_pair_images_refused_unless_allowed(tmp_path, reg, add_tiny):
    add_tiny("v1")
    root, pairs = lfw_fixture(tmp_path, missing=True)
    data = lfw_pairs_set(pairs, root)
    gone = str((root / "person00" / "person00_0007.jpg").absolute())  # listed under the first extension tried
    assert data.missing == (gone,)
    with pytest.raises(InvalidInput, match="person00_0007"):
        evaluate(reg, "v1", data=data, progress=None)
    assert reg.evaluations() == []
    res = evaluate(reg, "v1", data=data, fars=FARS, allow_missing=True, progress=None)
    assert res.missing == (gone,) and res.n_pairs == 19
    assert any("1 of 20 pairs skipped" in n for n in res.notes)


def test_typed_errors(reg, add_tiny):
    add_tiny("v1")
    add_tiny("wide", dim=32)
    data = synthetic_set(4, 2)
    with pytest.raises(NotFound):
        evaluate(reg, "nope", data=data, progress=None)
    with pytest.raises(NotFound):
        evaluate(reg, "v1", "nope", data=data, progress=None)
    with pytest.raises(Incompatible, match="16-D.*32-D"):
        evaluate(reg, "v1", "wide", data=data, progress=None)
    with pytest.raises(InvalidInput, match="both 'v1'"):
        evaluate(reg, "v1", "v1", data=data, progress=None)
    with pytest.raises(InvalidInput, match="outside"):
        evaluate(reg, "v1", data=data, fars=(0.0,), progress=None)
    with pytest.raises(InvalidInput, match="2 identities"):
        synthetic_set(1, 4)
    assert reg.evaluations() == []
