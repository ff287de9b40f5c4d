"""run_backfill: equals direct embedding, resumes, lists unreadable sources, survives a full disk."""

from __future__ import annotations

import errno
import shutil
from contextlib import contextmanager

import numpy as np
import pytest

from harmony.errors import Busy, HarmonyError, InvalidInput
from harmony.gallery import index as fx
from harmony.errors import DiskFull
from harmony.gallery.store import GalleryStore
from harmony.gallery.synthetic import HashEmbedder
from harmony.migration import checkpoint
from harmony.migration.backfill import backfill_status, run_backfill
from harmony.migration.checkpoint import BackfillDir

DIM = 32  # as in conftest.py
V2 = HashEmbedder("v2", DIM)


def assert_backfilled(g, n_expected):
    """Every current item has exactly its direct v2 vector in the v2 index, nothing else."""
    t = g.store.items()
    assert len(t) == n_expected and g.store.index("v2").ntotal == n_expected
    assert set(t.versions) == {"v2"}
    np.testing.assert_array_equal(g.store.vectors(list(t.item_ids), "v2"), g.direct("v2", t.item_ids))
    assert not (g.store.path / "migrations" / "v2").exists()


def test_complete_backfill_equals_direct_embedding(make_gallery):
    g = make_gallery(300)
    v1_before = g.store.vectors(list(g.store.items().item_ids), "v1")
    r = run_backfill(g.store, "v2", V2, batch_size=64)
    assert (r.complete, r.n_items, r.n_target, r.n_embedded, r.n_resumed, r.n_failed, r.batches) == \
        (True, 300, 300, 300, 0, 0, 5)
    # commits run on a background thread, overlapping the encoding: each time is within the total, not their sum
    assert r.total_s >= r.embed_s > 0 and r.total_s >= r.write_s > 0 and 0 < r.embed_share < 1
    assert_backfilled(g, 300)
    assert g.store.active_version == "v1"  # swapping is a separate step
    np.testing.assert_array_equal(g.store.vectors(list(g.store.items().item_ids), "v1"), v1_before)
    again = run_backfill(g.store, "v2", V2)  # nothing left to do
    assert (again.complete, again.n_embedded, again.n_target) == (True, 0, 300)


def test_stop_and_resume_equals_uninterrupted(make_gallery, tmp_path):
    g = make_gallery(300)
    ref = GalleryStore.open(shutil.copytree(g.store.path, tmp_path / "ref"))
    run_backfill(ref, "v2", V2, batch_size=50)
    r1 = run_backfill(g.store, "v2", V2, batch_size=50, stop_after=2)
    assert (r1.complete, r1.n_embedded, r1.batches) == (False, 100, 2)
    assert backfill_status(g.store, "v2").done == 100 and not g.store.has_index("v2")
    r2 = run_backfill(g.store, "v2", V2, batch_size=40, stop_after=1)  # batch size may change
    assert (r2.n_resumed, r2.n_embedded) == (100, 40)
    r3 = run_backfill(g.store, "v2", V2, batch_size=50)
    assert (r3.complete, r3.n_resumed, r3.n_embedded) == (True, 140, 160)
    assert_backfilled(g, 300)
    t, tr = g.store.items(), ref.items()
    np.testing.assert_array_equal(t.ids, tr.ids)
    np.testing.assert_array_equal(g.store.vectors(list(t.item_ids), "v2"), ref.vectors(list(t.item_ids), "v2"))


def test_vanished_sources_are_listed_and_the_rest_migrates(make_gallery):
    g = make_gallery(200)
    names = list(g.store.items().item_ids)
    gone = names[3:200:29]
    for n in gone:
        g.path_of(n).unlink()
    r = run_backfill(g.store, "v2", V2, batch_size=32)
    assert r.complete and r.n_failed == len(gone) and r.n_target == 200 - len(gone)
    assert sorted((f.item_id, f.source) for f in r.failed) == sorted((n, str(g.path_of(n))) for n in gone)
    t = g.store.items()
    assert {str(s) for s in t.item_ids[t.versions == "v1"]} == set(gone)
    assert g.store.index("v2").ntotal == 200 - len(gone)
    assert backfill_status(g.store, "v2").pending == len(gone)
    g.path_of(gone[0]).write_bytes(f"face-{gone[0]}".encode())  # one comes back
    r2 = run_backfill(g.store, "v2", V2)
    assert (r2.n_embedded, r2.n_failed) == (1, len(gone) - 1)
    np.testing.assert_array_equal(g.store.vectors(gone[:1], "v2"), g.direct("v2", gone[:1]))


def full_disk_after(n_ok: int, monkeypatch):
    """Make the (n_ok+1)-th atomic write of the checkpoint module fail with ENOSPC mid-write."""
    real = checkpoint.atomic_writer
    calls = []

    @contextmanager
    def writer(path):
        calls.append(path)
        with real(path) as f:
            if len(calls) > n_ok:
                f.write(b"partial")
                raise OSError(errno.ENOSPC, "No space left on device")
            yield f

    monkeypatch.setattr(checkpoint, "atomic_writer", writer)


def test_full_disk_fails_cleanly_and_resumes(make_gallery, monkeypatch):
    g = make_gallery(200)
    full_disk_after(2, monkeypatch)  # segments 0 and 1 commit, segment 2 hits ENOSPC
    with pytest.raises(DiskFull, match="disk full") as e:
        run_backfill(g.store, "v2", V2, batch_size=30)
    assert isinstance(e.value, HarmonyError) and "re-run" in e.value.hint
    monkeypatch.undo()
    bdir = BackfillDir(g.store.path, "v2")
    cursor = bdir.read_cursor()
    assert (cursor.n_segments, cursor.n_embedded) == (2, 60)
    assert sorted(p.name for p in bdir.path.iterdir()) == [".lock", "CURSOR", "seg-00000000.npz", "seg-00000001.npz"]
    assert not g.store.has_index("v2") and g.store.generation == 2
    r = run_backfill(g.store, "v2", V2, batch_size=30)
    assert (r.n_resumed, r.n_embedded) == (60, 140)
    assert_backfilled(g, 200)


def test_full_disk_while_installing_the_index_is_resumable(make_gallery, monkeypatch):
    g = make_gallery(100)

    def no_space(index, path):
        raise DiskFull("disk full while writing", hint="free space and re-run")

    monkeypatch.setattr(fx, "save_index", no_space)
    with pytest.raises(DiskFull):
        run_backfill(g.store, "v2", V2, batch_size=30)
    monkeypatch.undo()
    assert not g.store.has_index("v2") and BackfillDir(g.store.path, "v2").read_cursor().n_embedded == 100
    r = run_backfill(g.store, "v2", V2, batch_size=30)
    assert (r.complete, r.n_embedded, r.n_resumed) == (True, 0, 100)
    assert_backfilled(g, 100)


def test_gallery_changes_between_runs_are_picked_up(make_gallery):
    g = make_gallery(200)
    run_backfill(g.store, "v2", V2, batch_size=50, stop_after=2)  # the first 100 (by seq) are done
    names = list(g.store.items().item_ids)
    g.add(["late1.img", "late2.img"])  # new items
    g.add([names[5]], content="new photo")  # an already backfilled item changes
    g.store.remove_items([names[7], names[150]])  # one done, one pending
    run_backfill(g.store, "v2", V2, batch_size=50)
    assert_backfilled(g, 200)
    t = g.store.items()
    assert {"late1.img", "late2.img"} <= set(t.item_ids) and names[7] not in set(t.item_ids)


def test_ivf_sq8_target_is_trained_on_the_new_vectors(make_gallery):
    g = make_gallery(2500, codec="ivf-sq8")
    run_backfill(g.store, "v2", V2, batch_size=500)
    index = g.store.index("v2")
    assert fx.codec_of(index) == "ivf-sq8" and index.ntotal == 2500 and fx._ivf(index).nlist == fx.default_nlist(2500)
    t = g.store.items()
    q = g.direct("v2", t.item_ids[:100])
    hits = g.store.search(q, 1, "v2")
    assert [h[0].item_id for h in hits] == list(t.item_ids[:100]) and max(h[0].distance for h in hits) < 0.02


def test_bad_embedder_output_and_concurrent_runs_are_refused(make_gallery):
    g = make_gallery(50)
    with pytest.raises(InvalidInput, match="L2-normalised"):
        run_backfill(g.store, "v2", lambda s: (V2(s)[0] * 3, V2(s)[1]))
    with pytest.raises(InvalidInput, match="vectors for"):
        run_backfill(g.store, "v2", lambda s: (V2(s)[0][1:], V2(s)[1]))
    with pytest.raises(InvalidInput, match="dimension 8"):
        run_backfill(g.store, "v2", HashEmbedder("v2", 8))
    assert BackfillDir(g.store.path, "v2").read_cursor().n_segments == 0
    with BackfillDir(g.store.path, "v2").lock():
        with pytest.raises(Busy, match="already running"):
            run_backfill(g.store, "v2", V2)


def test_ticks_progress_bar_and_status(make_gallery):
    g = make_gallery(120)
    assert backfill_status(g.store, "v2").state == "planned"
    ticks = []
    run_backfill(g.store, "v2", V2, batch_size=25, stop_after=2, on_batch=ticks.append)
    assert [(t.done, t.total, t.batches) for t in ticks] == [(25, 120, 1), (50, 120, 2)]
    s = backfill_status(g.store, "v2")
    assert (s.state, s.done, s.pending, s.batches) == ("backfilling", 50, 70, 2)
    bars = []  # what the CLI's rich_progress() would draw
    r = run_backfill(g.store, "v2", V2, batch_size=25, progress=bars.append, on_batch=ticks.append)
    assert r.complete and ticks[-1].done == 120
    assert {b.task for b in bars} == {"backfill -> v2"} and bars[-1].finished and bars[-1].done == 120
    assert set(bars[-1].fields) == {"rate", "embed_share"}
    assert backfill_status(g.store, "v2").state == "ready"
