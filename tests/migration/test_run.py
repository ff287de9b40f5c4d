"""Migrations through the library (harmony.gallery.catalog, harmony.migration): plan, partial backfill + mixed search (compared with a
brute-force search over each item's newest vector), report, swap, rollback, gc, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from harmony.errors import Incompatible, InUse, InvalidInput, NotFound
from harmony.metrics import compatibility_report, identification_report
from harmony.gallery.catalog import build_gallery, open_gallery
from harmony.migration.search import search_gallery
from harmony.migration.lifecycle import gc_gallery, rollback_gallery, swap_gallery
from harmony.migration.run import run_migration
from harmony.migration.plan import plan_migration
from tests.gallery.helpers import assert_same_hits, brute_force, direct_vectors, record_verdict


def _files(env):
    files = sorted(env.faces.glob("*/*.png"))
    return files, [str(f.relative_to(env.faces)) for f in files]


def test_compatible_migration_mixed_search_report_swap_rollback_gc(env):
    build_gallery(env.reg, "G", "v1", env.faces)
    record_verdict(env.reg, "v2", "v1", 1e-3, True)
    plan = plan_migration(env.reg, "G", "v2")
    assert (plan.mode, plan.source, plan.target, plan.n_items, plan.resume) == ("mixed", "v1", "v2", 48, None)
    out = run_migration(env.reg, plan, batch_size=10, stop_after=2, mirror_every_s=0.0)
    assert not out.complete and out.migration.state == "backfilling" and out.migration.cursor == 20
    assert out.migration.counts["done"] == 20

    # mid-backfill: queries switch to v2 at once; each item once, against its newest vector
    files, names = _files(env)
    _, store = open_gallery(env.reg, "G")
    seqs = store.items().seqs  # items are backfilled in seq order (= build order here)
    done = set(np.argsort(seqs)[:20])
    v1, v2 = direct_vectors(env.reg, "v1", files), direct_vectors(env.reg, "v2", files)
    newest = np.stack([v2[i] if i in done else v1[i] for i in range(48)])
    r = search_gallery(env.reg, "G", env.faces / "id009", k=6)
    assert (r.mode, r.query_version) == ("mixed", "v2")
    assert_same_hits(r.hits, brute_force(direct_vectors(env.reg, "v2", r.queries), newest, names, 48), 6)
    by_name = {n: i for i, n in enumerate(names)}
    for hits in r.hits:
        assert len({h.item_id for h in hits}) == 6
        assert all(h.version == ("v2" if by_name[h.item_id] in done else "v1") for h in hits)
    assert search_gallery(env.reg, "G", env.faces / "id009", version="v1").mode == "direct"

    with pytest.raises(InUse):  # one migration in flight per gallery
        plan_migration(env.reg, "G", "v3")

    plan = plan_migration(env.reg, "G", "v2")
    assert plan.resume == out.migration.id and (plan.done, plan.pending) == (20, 28)
    out = run_migration(env.reg, plan, batch_size=10)
    assert out.complete and out.migration.state == "ready" and out.backfill.n_resumed == 20
    assert out.migration.counts["failed"] == 0 and out.migration.cursor == 48
    np.testing.assert_allclose(store.vectors(names, "v2"), v2, atol=1e-5)

    # the report equals the metrics on directly embedded vectors
    rep = env.reg.get_migration(out.migration.id).report
    labels = np.array([f.parent.name for f in files])
    twin = compatibility_report(v1, v2, labels, rep["fars"], old_name="v1", new_name="v2")
    for row, t in zip(rep["verification"], twin.rows):
        assert row["far"] == t.far
        assert (row["before"], row["cross"], row["after"]) == pytest.approx(
            (t.old_old.val, t.new_old.val, t.new_new.val), abs=1e-6)
    ident = identification_report(v1, v2, labels, 1, (1, 5), old_name="v1", new_name="v2").as_dict()
    assert rep["identification"]["rows"] == ident["rows"]

    s = swap_gallery(env.reg, "G")
    assert (s.action, s.active, s.previous, s.missing) == ("swapped", "v2", "v1", 0)
    assert env.reg.get_gallery("G").version == "v2" and env.reg.get_migration(out.migration.id).state == "swapped"
    r = search_gallery(env.reg, "G", env.faces / "id009", k=3)
    assert r.mode == "direct" and r.query_version == "v2" and all(h.version == "v2" for h in r.hits[0])

    rb = rollback_gallery(env.reg, "G")
    assert (rb.action, rb.active) == ("rolled_back", "v1")
    assert env.reg.get_gallery("G").version == "v1" and env.reg.migrations("G")[-1].state == "rolled_back"
    assert gc_gallery(env.reg, "G") == ["v2"]
    with pytest.raises(NotFound):
        rollback_gallery(env.reg, "G")

    # after rollback + gc, migrating to v2 again re-embeds everything (nothing is taken for done)
    out = run_migration(env.reg, plan_migration(env.reg, "G", "v2"), batch_size=16, swap=True)
    assert out.migration.state == "swapped" and out.backfill.n_embedded == 48
    np.testing.assert_allclose(store.vectors(names, "v2"), v2, atol=1e-5)
    assert gc_gallery(env.reg, "G") == ["v1"] and store.versions() == ("v2",)
    with pytest.raises(NotFound):
        rollback_gallery(env.reg, "G")  # the old index is gone


def test_incompatible_migration_refuses_mixed_search_until_swap(env):
    build_gallery(env.reg, "G", "v1", env.faces)
    record_verdict(env.reg, "v3", "v1", 1e-2, True)  # passes elsewhere, not at the gallery's FAR
    plan = plan_migration(env.reg, "G", "v3")
    assert plan.mode == "full-backfill" and plan.verdict.verdict is None
    assert "passes at FAR 0.01" in plan.verdict.describe()
    assert any("refused" in s for s in plan.steps(256, False))
    run_migration(env.reg, plan, batch_size=8, stop_after=1)
    r = search_gallery(env.reg, "G", env.faces / "id001" / "000.png")
    assert (r.mode, r.query_version) == ("direct", "v1")  # queries stay on v1
    with pytest.raises(Incompatible, match="40 v1 vector"):
        search_gallery(env.reg, "G", env.faces / "id001" / "000.png", version="v3")
    with pytest.raises(InvalidInput, match="not finished"):
        swap_gallery(env.reg, "G")
    out = run_migration(env.reg, plan_migration(env.reg, "G", "v3"), batch_size=8, swap=True)
    assert out.migration.state == "swapped"
    r = search_gallery(env.reg, "G", env.faces / "id001" / "000.png", k=3)
    assert (r.mode, r.query_version) == ("direct", "v3")
    with pytest.raises(Incompatible):  # and v1 queries are now the incompatible ones
        search_gallery(env.reg, "G", env.faces / "id001" / "000.png", version="v1")


def test_plan_refusals(env):
    build_gallery(env.reg, "G", "v1", env.faces)
    with pytest.raises(NotFound):
        plan_migration(env.reg, "H", "v2")
    with pytest.raises(NotFound):
        plan_migration(env.reg, "G", "v9")
    with pytest.raises(Incompatible, match="8 dimensions"):
        plan_migration(env.reg, "G", "v8")
    with pytest.raises(InvalidInput, match="already serves"):
        plan_migration(env.reg, "G", "v1")
    assert env.reg.migrations("G") == []
