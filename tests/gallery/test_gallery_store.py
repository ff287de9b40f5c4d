"""GalleryStore: add / replace / remove / search against brute force, persistence, crash safety."""

from __future__ import annotations

import numpy as np
import pytest

from harmony.errors import AlreadyExists, Busy, InvalidInput, NotFound
from harmony.gallery import index as fx
from harmony.errors import DiskFull
from harmony.gallery.store import GalleryStore
from harmony.gallery.synthetic import clustered_unit_vectors

DIM = 32


def items(n, seed=0, prefix="img"):
    x, labels, centres = clustered_unit_vectors(n, DIM, n_clusters=max(1, n // 8), seed=seed)
    names = [f"{prefix}/{i:05d}.png" for i in range(n)]
    return names, [f"/data/{s}" for s in names], [f"id{l}" for l in labels], x, centres


def brute_force(names, labels, x, q, k):
    d = 2.0 - 2.0 * (q.astype(np.float64) @ x.astype(np.float64).T)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return [[(names[j], labels[j], d[r, j]) for j in row] for r, row in enumerate(order)]


def assert_hits_equal(hits, ref, version="v1"):
    for h_row, r_row in zip(hits, ref, strict=True):
        assert [(h.item_id, h.label, h.version) for h in h_row] == [(a, b, version) for a, b, _ in r_row]
        np.testing.assert_allclose([h.distance for h in h_row], [c for _, _, c in r_row], atol=1e-5)


@pytest.fixture
def store(tmp_path):
    return GalleryStore.create(tmp_path / "g", DIM, "v1", "flat", use_gpu=False)


def test_create_open_and_errors(tmp_path, store):
    with pytest.raises(AlreadyExists):
        GalleryStore.create(tmp_path / "g", DIM, "v1")
    with pytest.raises(NotFound, match="no gallery"):
        GalleryStore.open(tmp_path / "nothing")
    with pytest.raises(InvalidInput, match="version name"):
        GalleryStore.create(tmp_path / "h", DIM, "v1/../x")
    info = GalleryStore.open(tmp_path / "g").info()
    assert (info.dim, info.codec, info.active, info.n_items, info.vectors_by_version) == (DIM, "flat", "v1", 0, {})


def test_add_and_search_match_brute_force(tmp_path, store):
    names, sources, labels, x, centres = items(400)
    assert store.add_items(names, sources, labels, x, "v1") == (400, 0)
    q, _, _ = clustered_unit_vectors(20, DIM, centres=centres, seed=9)
    assert_hits_equal(store.search(q, 7), brute_force(names, labels, x, q, 7))
    reopened = GalleryStore.open(tmp_path / "g", use_gpu=False)  # persisted
    assert_hits_equal(reopened.search(q, 7), brute_force(names, labels, x, q, 7))
    files = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert files == [".lock", "gallery.json", "index-v1.2.faiss", "items.2.npz"]  # old generation deleted


def test_replace_keeps_the_id_and_never_duplicates(store):
    names, sources, labels, x, centres = items(200)
    store.add_items(names, sources, labels, x, "v1")
    ids_before = store.items().ids.copy()
    new_names, _, _, y, _ = items(50, seed=5)
    moved = names[10:60]
    assert store.add_items(moved, [s + ".new" for s in moved], ["same"] * 50, y, "v1") == (0, 50)
    t = store.items()
    assert len(t) == 200 and store.index().ntotal == 200
    np.testing.assert_array_equal(t.ids, ids_before)
    np.testing.assert_allclose(store.vectors(moved), y, atol=1e-7)
    assert t.sources[t.row_of_item[moved[0]]] == names[10] + ".new"
    expected = x.copy()
    expected[10:60] = y
    exp_labels = list(labels)
    exp_labels[10:60] = ["same"] * 50
    assert_hits_equal(store.search(y[:5], 10), brute_force(names, exp_labels, expected, y[:5], 10))
    assert len(t.seqs) == len(set(t.seqs))  # every write got its own change counter


def test_remove_items(store):
    names, sources, labels, x, _ = items(100)
    store.add_items(names, sources, labels, x, "v1")
    assert store.remove_items(names[:30]) == 30
    assert len(store.items()) == 70 and store.index().ntotal == 70
    hits = store.search(x[:30], 5)
    assert not {h.item_id for row in hits for h in row} & set(names[:30])
    with pytest.raises(NotFound, match="not in gallery"):
        store.remove_items(["img/00000.png"])
    assert store.remove_items(["img/00000.png", names[50]], missing_ok=True) == 1
    # a removed item id that comes back gets a fresh int64 id (old ones are never reused)
    store.add_items(names[:1], sources[:1], labels[:1], x[:1], "v1")
    assert store.items().ids.max() == 100


def test_strings_round_trip(tmp_path, store):
    names = ["ü/spaced name.jpg", "", "a\tb"]
    x, _, _ = clustered_unit_vectors(3, DIM, seed=1)
    store.add_items(names, ["/p/ü.jpg", "", "x"], ["", "Zoë", "lab el"], x, "v1")
    t = GalleryStore.open(tmp_path / "g").items()
    assert list(t.item_ids) == names and list(t.labels) == ["", "Zoë", "lab el"]
    with pytest.raises(InvalidInput, match="NUL"):
        store.add_items(["bad\0id"], ["s"], ["l"], x[:1], "v1")
    with pytest.raises(InvalidInput, match="repeat"):
        store.add_items(["a", "a"], ["s", "s"], ["l", "l"], x[:2], "v1")


def test_wrong_version_or_dimension_refused(store):
    names, sources, labels, x, _ = items(10)
    with pytest.raises(InvalidInput, match="v2 has no index"):
        store.add_items(names, sources, labels, x, "v2")
    with pytest.raises(InvalidInput, match=f"expected {DIM}"):
        store.add_items(names, sources, labels, np.ones((10, 16), np.float32) / 4, "v1")
    with pytest.raises(InvalidInput, match="dimension"):
        store.search(np.ones((1, 8), np.float32) / np.sqrt(8), 3)


def test_failed_commit_keeps_the_previous_generation(tmp_path, store, monkeypatch):
    names, sources, labels, x, _ = items(100)
    store.add_items(names[:50], sources[:50], labels[:50], x[:50], "v1")
    gen = store.generation

    def no_space(index, path):
        raise DiskFull("disk full while writing", hint="free space")

    monkeypatch.setattr(fx, "save_index", no_space)
    with pytest.raises(DiskFull):
        store.add_items(names[50:], sources[50:], labels[50:], x[50:], "v1")
    monkeypatch.undo()
    assert not (tmp_path / "g" / f"items.{gen + 1}.npz").exists()  # the half-written generation is gone
    for s in (store, GalleryStore.open(tmp_path / "g")):
        assert s.generation == gen and len(s.items()) == 50 and s.index().ntotal == 50
    store.add_items(names[50:], sources[50:], labels[50:], x[50:], "v1")  # and it can carry on
    assert store.index().ntotal == 100


def test_two_handles_see_each_other_and_lock(tmp_path, store):
    other = GalleryStore.open(tmp_path / "g", use_gpu=False)
    other.lock_timeout = 0.1
    names, sources, labels, x, _ = items(40)
    store.add_items(names, sources, labels, x, "v1")
    assert other.search(x[:1], 1)[0][0].item_id == names[0]  # refreshed from disk
    with store.write_lock():
        with pytest.raises(Busy, match="another process"):
            other.remove_items(names[:1])
    assert other.remove_items(names[:1]) == 1
    assert len(store.items()) == 39


@pytest.mark.parametrize("codec", ["sq8", "ivf", "ivf-sq8"])
def test_quantised_and_ivf_galleries(tmp_path, codec):
    s = GalleryStore.create(tmp_path / codec, DIM, "v1", codec, use_gpu=False)
    names, sources, labels, x, centres = items(3000)
    s.add_items(names, sources, labels, x, "v1")  # the first add trains the index
    more_names, more_src, more_lab, y, _ = items(300, seed=3, prefix="late")
    s.add_items(more_names, more_src, more_lab, y, "v1")
    q, _, _ = clustered_unit_vectors(30, DIM, centres=centres, seed=7)
    ref = brute_force(names + more_names, labels + more_lab, np.vstack([x, y]), q, 10)
    got = GalleryStore.open(tmp_path / codec, use_gpu=False).search(q, 10)
    recall = np.mean([len({h.item_id for h in g} & {a for a, _, _ in r}) / 10 for g, r in zip(got, ref)])
    assert recall >= 0.9
    assert s.info().vectors_by_version == {"v1": 3300}
