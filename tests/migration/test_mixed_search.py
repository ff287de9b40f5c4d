"""mixed_search against a brute-force search over each item's newest vector."""

from __future__ import annotations

import numpy as np
import pytest

from harmony.errors import Incompatible
from harmony.gallery.synthetic import HashEmbedder, normalise
from harmony.migration.backfill import run_backfill
from harmony.migration.gate import Measured, VerdictView
from harmony.migration.mixed_search import load_partial, mixed_search
from harmony.migration.swap import swap

DIM = 32
V2 = HashEmbedder("v2", DIM, drift_from="v1")  # a "compatible" upgrade: v2 stays near v1
PASS = VerdictView("v2", "v1", 1e-3, True, (Measured(1, 1e-3, "synthetic", True, 0.9, 0.92),))
FAIL = VerdictView("v2", "v1", 1e-3, False, (Measured(1, 1e-3, "synthetic", False, 0.9, 0.5),))


def newest_vectors(g, v2_items: set[str]):
    """Reference: the direct v2 embedding of the items listed, the direct v1 one of the others."""
    t = g.store.items()
    names = [str(s) for s in t.item_ids]
    vecs = g.direct("v1", names)
    versions = np.array(["v2" if n in v2_items else "v1" for n in names], dtype=object)
    new = [i for i, n in enumerate(names) if n in v2_items]
    if new:
        vecs[new] = g.direct("v2", [names[i] for i in new], drift_from="v1")
    return names, vecs, versions


def brute_force(names, vecs, versions, q, k):
    d = 2.0 - 2.0 * (q.astype(np.float64) @ vecs.astype(np.float64).T)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return [[(names[j], versions[j], d[r, j]) for j in row] for r, row in enumerate(order)]


def check(hits, ref):
    for h_row, r_row in zip(hits, ref, strict=True):
        assert len({h.item_id for h in h_row}) == len(h_row)  # each item once
        assert all(a.distance <= b.distance for a, b in zip(h_row, h_row[1:]))  # nearest first
        assert [(h.item_id, h.version) for h in h_row] == [(a, b) for a, b, _ in r_row]
        np.testing.assert_allclose([h.distance for h in h_row], [c for _, _, c in r_row], atol=1e-5)


def queries(g, rng):
    names = [str(s) for s in g.store.items().item_ids]
    near = g.direct("v2", names[0:8] + names[150:158], drift_from="v1")  # half backfilled, half not
    return np.vstack([near, normalise(rng.standard_normal((8, DIM)))])


@pytest.mark.parametrize("codec", ["flat", "ivf"])
def test_mid_backfill_merge_equals_brute_force_over_newest_vectors(make_gallery, codec):
    g = make_gallery(300, codec=codec)
    run_backfill(g.store, "v2", V2, batch_size=50, stop_after=2)  # the first 100 items have v2 vectors
    names = [str(s) for s in g.store.items().item_ids]
    ids = g.store.items().ids.copy()
    g.add([names[3]], content="changed")  # its v2 vector is stale now: the new v1 one is newest
    g.store.remove_items([names[4]])
    partial = load_partial(g.store, "v2")
    assert set(partial.ids) == set(ids[:100]) - {ids[3], ids[4]}
    v2_items = set(names[:100]) - {names[3], names[4]}
    q = queries(g, np.random.default_rng(0))
    hits = mixed_search(g.store, q, 15, "v2", verdict=PASS, nprobe=10_000)
    check(hits, brute_force(*newest_vectors(g, v2_items), q, 15))
    assert {h.version for row in hits for h in row} == {"v1", "v2"}
    with pytest.raises(Incompatible, match="not compatible") as e:
        mixed_search(g.store, q, 15, "v2", verdict=FAIL)
    assert "finish the backfill" in e.value.hint


def test_finished_backfill_with_unreadable_items(make_gallery):
    g = make_gallery(200)
    names = [str(s) for s in g.store.items().item_ids]
    g.path_of(names[150]).unlink()
    run_backfill(g.store, "v2", V2, batch_size=64)
    g.path_of(names[150]).write_bytes(f"face-{names[150]}".encode())  # for the reference only
    q = queries(g, np.random.default_rng(1))
    hits = mixed_search(g.store, q, 10, "v2", verdict=PASS)
    # the unreadable item keeps its v1 vector; everyone else is scored from the installed v2 index
    names_ref, vecs, versions = newest_vectors(g, set(names) - {names[150]})
    check(hits, brute_force(names_ref, vecs, versions, q, 10))
    with pytest.raises(Incompatible, match=r"the 1 v1 vector\(s\) of gallery g"):
        mixed_search(g.store, q, 10, "v2", verdict=FAIL)


def test_no_old_vectors_needed_after_full_backfill_or_swap(make_gallery):
    g = make_gallery(120)
    run_backfill(g.store, "v2", V2, batch_size=64)
    q = queries(g, np.random.default_rng(2))
    names = [str(s) for s in g.store.items().item_ids]
    ref = brute_force(*newest_vectors(g, set(names)), q, 10)
    check(mixed_search(g.store, q, 10, "v2", verdict=FAIL), ref)  # nothing old left to score
    swap(g.store, "v2")
    check(mixed_search(g.store, q, 10, "v2", verdict=FAIL), ref)
    check(g.store.search(q, 10), ref)
