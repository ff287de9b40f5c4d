"""Migrations that meet trouble: vanished sources, a full disk, a cancel, and a swap or rollback
killed between its store and registry steps."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from harmony.errors import HarmonyError, InvalidInput
from harmony.errors import DiskFull
from harmony.gallery.catalog import build_gallery, gallery_view, open_gallery
from harmony.migration.search import search_gallery
from harmony.migration.lifecycle import migration_status, rollback_gallery, swap_gallery
from harmony.migration.run import run_migration
from harmony.migration.plan import plan_migration
from tests.gallery.helpers import direct_vectors


def test_vanished_sources_are_listed_and_the_migration_continues(env):
    build_gallery(env.reg, "G", "v1", env.faces)
    gone = [env.faces / "id003" / "001.png", env.faces / "id010" / "002.png"]
    for p in gone:
        p.unlink()
    out = run_migration(env.reg, plan_migration(env.reg, "G", "v2"), batch_size=8)
    assert out.complete and out.backfill.n_failed == 2
    counts = env.reg.get_migration(out.migration.id).counts
    assert counts["failed"] == 2 and counts["target_vectors"] == 46
    assert sorted(f["item_id"] for f in counts["failed_items"]) == ["id003/001.png", "id010/002.png"]
    assert out.report["n_items"] == 46
    with pytest.raises(InvalidInput, match="2 item"):
        swap_gallery(env.reg, "G")
    s = swap_gallery(env.reg, "G", allow_missing=True)
    assert (s.active, s.missing) == ("v2", 2)


def test_cancel_in_flight_then_a_new_migration(env):
    build_gallery(env.reg, "G", "v1", env.faces)
    run_migration(env.reg, plan_migration(env.reg, "G", "v3"), batch_size=8, stop_after=2)
    _, store = open_gallery(env.reg, "G")
    assert store.info().backfills == ("v3",)
    o = rollback_gallery(env.reg, "G")
    assert o.action == "cancelled" and o.migration.state == "failed" and o.migration.counts["cancelled"]
    assert store.info().backfills == ()
    out = run_migration(env.reg, plan_migration(env.reg, "G", "v2"), batch_size=16)
    assert out.migration.state == "ready" and out.backfill.n_embedded == 48


def test_disk_full_fails_cleanly_and_resumes(env, monkeypatch):
    import harmony.io as atomic

    build_gallery(env.reg, "G", "v1", env.faces)
    real_fsync, calls = atomic.os.fsync, []

    def full_after_some(fd):
        calls.append(fd)
        if len(calls) > 6:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", full_after_some)
    with pytest.raises(DiskFull) as e:
        run_migration(env.reg, plan_migration(env.reg, "G", "v2"), batch_size=8)
    assert isinstance(e.value, HarmonyError) and "free space" in e.value.hint
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    mig = env.reg.migrations("G")[-1]
    assert mig.state == "backfilling"
    _, store = open_gallery(env.reg, "G")
    assert not [p for p in store.path.rglob("*") if atomic.is_temp_name(p.name)]
    out = run_migration(env.reg, plan_migration(env.reg, "G", "v2"), batch_size=8)
    assert out.complete and out.backfill.n_resumed > 0 and out.backfill.n_resumed + out.backfill.n_embedded == 48
    files = sorted(env.faces.glob("*/*.png"))
    names = [str(f.relative_to(env.faces)) for f in files]
    np.testing.assert_allclose(store.vectors(names, "v2"), direct_vectors(env.reg, "v2", files), atol=1e-5)


def test_swap_and_rollback_killed_between_steps_are_finished_by_a_rerun(env):
    from harmony.migration.swap import rollback, swap

    build_gallery(env.reg, "G", "v1", env.faces)
    run_migration(env.reg, plan_migration(env.reg, "G", "v2"), batch_size=16)
    _, store = open_gallery(env.reg, "G")
    swap(store, "v2")  # step 1 only: killed before the registry heard of it
    assert gallery_view(env.reg, "G").warnings and migration_status(env.reg, "G").warnings
    assert search_gallery(env.reg, "G", env.faces / "id000" / "000.png").query_version == "v2"
    s = swap_gallery(env.reg, "G")
    assert s.fixed and s.action == "already"
    assert env.reg.get_gallery("G").version == "v2" and env.reg.migrations("G")[-1].state == "swapped"
    assert not gallery_view(env.reg, "G").warnings

    rollback(store)  # the same for a rollback
    o = rollback_gallery(env.reg, "G")
    assert o.fixed and (o.action, o.active) == ("rolled_back", "v1")
    assert env.reg.get_gallery("G").version == "v1" and env.reg.migrations("G")[-1].state == "rolled_back"
