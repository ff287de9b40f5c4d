"""swap / rollback and the store's drop_index (what lifecycle.gc_gallery calls): atomic pointer
switches, refusals that say what to do."""

from __future__ import annotations

import pytest

from harmony.errors import InUse, InvalidInput, NotFound
from harmony.gallery.store import GalleryStore
from harmony.gallery.synthetic import HashEmbedder
from harmony.migration.backfill import backfill_status, run_backfill
from harmony.migration.swap import rollback, swap

DIM = 32
V2 = HashEmbedder("v2", DIM)


def test_swap_rollback_gc_cycle(make_gallery):
    g = make_gallery(100)
    names = [str(s) for s in g.store.items().item_ids]
    with pytest.raises(NotFound, match="no v2 index"):
        swap(g.store, "v2")
    run_backfill(g.store, "v2", V2, batch_size=40, stop_after=1)
    with pytest.raises(InvalidInput, match="not finished"):
        swap(g.store, "v2")
    run_backfill(g.store, "v2", V2)
    r = swap(g.store, "v2")
    assert (r.active, r.previous, r.missing) == ("v2", "v1", 0)
    other = GalleryStore.open(g.store.path, use_gpu=False)  # another process sees the switch
    assert other.active_version == "v2" and backfill_status(other, "v2").state == "swapped"
    hits = other.search(g.direct("v2", names[:5]), 1)
    assert [(h[0].item_id, h[0].version) for h in hits] == [(n, "v2") for n in names[:5]]
    assert max(h[0].distance for h in hits) < 1e-6
    assert swap(g.store, "v2").active == "v2"  # idempotent
    r = rollback(g.store)
    assert (r.active, r.previous) == ("v1", "v2") and other.active_version == "v1"
    assert backfill_status(g.store, "v2").state == "rolled_back"
    top = other.search(g.store.vectors(names[:1], "v1"), 1)[0][0]
    assert (top.item_id, top.version) == (names[0], "v1") and top.distance < 1e-6
    assert rollback(g.store).active == "v2"  # and forward again
    with pytest.raises(InUse, match="active"):
        g.store.drop_index("v2")
    old = g.store.previous_version
    g.store.drop_index(old)
    assert old == "v1"
    assert not any(p.name.startswith("index-v1") for p in g.store.path.iterdir())
    assert g.store.versions() == ("v2",) and g.store.previous_version is None
    with pytest.raises(NotFound, match="roll back"):
        rollback(g.store)
    assert g.store.previous_version is None  # nothing left to collect


def test_swap_refuses_items_without_a_target_vector(make_gallery):
    g = make_gallery(60)
    names = [str(s) for s in g.store.items().item_ids]
    g.path_of(names[10]).unlink()
    run_backfill(g.store, "v2", V2)
    with pytest.raises(InvalidInput, match="1 item") as e:
        swap(g.store, "v2")
    assert "--allow-missing" in e.value.hint
    assert g.store.active_version == "v1"
    r = swap(g.store, "v2", allow_missing=True)
    assert (r.active, r.missing) == ("v2", 1)
    assert rollback(g.store).missing == 0  # every item still has its v1 vector
