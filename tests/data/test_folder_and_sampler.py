import logging

import numpy as np
import pytest
from PIL import Image

from harmony.data.datasets import FolderFaces
from harmony.data.folder import identity_split, scan_folder, subset
from harmony.data.sampler import PKBatchSampler
from harmony.errors import InvalidInput, NotFound


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for ident, n in [("alice", 3), ("bob", 2), ("carol", 1)]:
        d = tmp_path / ident
        d.mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(d / f"{i}.png")
    (tmp_path / "alice" / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "bob" / "notes.txt").write_text("ignored")
    return tmp_path


def test_scan_reports_and_skips(folder, caplog):
    with caplog.at_level(logging.WARNING):
        idx = scan_folder(folder)
    assert idx.identities == ["alice", "bob"]
    assert idx.skipped_identities == ["carol"]
    assert any("broken.jpg" in p for p in idx.unreadable)
    assert "broken.jpg" in caplog.text
    assert list(idx.labels) == [0, 0, 0, 1, 1]
    assert idx.item_ids()[0] == "alice/0.png"


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        scan_folder(tmp_path / "nope")
    with pytest.raises(InvalidInput, match="no identity"):
        scan_folder(tmp_path)


def test_folder_dataset_resizes_and_substitutes_unreadable(folder, caplog):
    idx = scan_folder(folder, verify=False)  # the broken file gets through the scan
    ds = FolderFaces(idx.paths, idx.labels, size=32)
    bad = [i for i, p in enumerate(idx.paths) if p.endswith("broken.jpg")][0]
    with caplog.at_level(logging.WARNING):
        item = ds[bad]
    assert item["x"].shape == (3, 32, 32) and item["y"].item() == idx.labels[bad]
    assert "broken.jpg" in caplog.text


def test_identity_split_is_stable_and_subset_relabels(folder):
    names = [f"id{i}" for i in range(200)]
    s1 = identity_split(names, (0.8, 0.1, 0.1))
    assert s1 == identity_split(list(reversed(names)), (0.8, 0.1, 0.1))[::-1]
    assert 120 < s1.count("train") < 190
    idx = scan_folder(folder)
    sub = subset(idx, {"bob"})
    assert sub.identities == ["bob"] and set(sub.labels) == {0}


def test_pk_sampler_shapes_and_determinism():
    labels = np.repeat(np.arange(10), [5, 5, 5, 5, 5, 3, 3, 2, 2, 1])
    s = PKBatchSampler(labels, p=4, k=4, steps=20, seed=1)
    batches = list(s)
    assert len(batches) == 20 and all(len(b) == 16 for b in batches)
    for b in batches:
        labs = labels[b]
        assert len(set(labs)) == 4 and all((labs == c).sum() == 4 for c in set(labs))
        assert 9 not in labs  # singletons cannot form positives
    assert batches == list(PKBatchSampler(labels, 4, 4, 20, seed=1))
    s.set_epoch(1)
    assert list(s) != batches


def test_pk_sampler_errors():
    with pytest.raises(InvalidInput, match="P=5"):
        PKBatchSampler(np.repeat(np.arange(3), 4), p=5, k=2, steps=1)
    with pytest.raises(InvalidInput, match=">= 2"):
        PKBatchSampler(np.repeat(np.arange(3), 4), p=2, k=1, steps=1)


def test_load_images_masks_and_reports_unreadable(folder):
    from harmony.data.images import load_images

    idx = scan_folder(folder, verify=False)
    d = load_images(idx.paths, 16)
    bad = [p for p in idx.paths if p.endswith("broken.jpg")]
    assert d.ok.tolist() == [not p.endswith("broken.jpg") for p in idx.paths]
    assert d.images.shape == (len(idx.paths) - len(bad), 16, 16, 3) and d.images.dtype == np.uint8
    assert [u.path for u in d.unusable] == bad and all("cannot read image" in u.reason for u in d.unusable)
