"""The state machine (migration/states.py): every (from, to) state pair is checked against the
transitions written out by hand from DESIGN section 6, through the real registry."""

from __future__ import annotations


import pytest

from harmony.errors import InUse, InvalidInput, NotFound
from harmony.migration.states import ACTIVE_STATES, active_migration, advance, begin

STATES = ["planned", "backfilling", "ready", "swapped", "rolled_back", "failed"]
# Written independently of states.TRANSITIONS: the happy path, planned->ready when there is
# nothing to backfill, backfilling->backfilling for cursor updates, rollback from ready or swapped,
# failed from every state that is not finished.
ALLOWED = {
    ("planned", "backfilling"), ("backfilling", "ready"), ("ready", "swapped"), ("swapped", "rolled_back"),
    ("planned", "ready"), ("backfilling", "backfilling"), ("ready", "rolled_back"),
    ("planned", "failed"), ("backfilling", "failed"), ("ready", "failed"), ("swapped", "failed"),
}
PATH_TO = {"planned": [], "backfilling": ["backfilling"], "ready": ["ready"], "swapped": ["ready", "swapped"],
           "rolled_back": ["ready", "rolled_back"], "failed": ["failed"]}


@pytest.fixture()
def two_versions(add):
    add("v1")
    add("v2")


def test_every_transition(reg, two_versions):
    count = iter(range(100))

    def migration_in(state: str) -> int:
        gallery = f"g{next(count)}"
        reg.add_gallery(gallery, version="v1", path=f"galleries/{gallery}")
        mid = begin(reg, gallery, "v1", "v2", {"mode": "mixed"}).id
        for step in PATH_TO[state]:
            advance(reg, mid, state=step)
        assert reg.get_migration(mid).state == state
        return mid

    for src in STATES:
        mid = migration_in(src)
        for dst in STATES:  # refusals leave the state alone, so one migration serves them all
            if (src, dst) not in ALLOWED:
                with pytest.raises(InvalidInput, match=f"cannot go from {src} to {dst}"):
                    advance(reg, mid, state=dst)
        assert reg.get_migration(mid).state == src
        for i, dst in enumerate(sorted(d for s, d in ALLOWED if s == src)):
            target = mid if i == 0 else migration_in(src)
            assert advance(reg, target, state=dst).state == dst, (src, dst)


def test_cursor_counts_report(reg, two_versions):
    reg.add_gallery("faces", version="v1", path="galleries/faces")
    m = begin(reg, "faces", "v1", "v2", {"mixed": True, "batches": 3})
    assert (m.state, m.plan, m.cursor, m.counts, m.report) == ("planned", {"mixed": True, "batches": 3}, None, {}, {})
    m = advance(reg, m.id, state="backfilling", cursor=0, counts={"total": 30, "done": 0})
    for done in (10, 20, 30):
        m = advance(reg, m.id, state="backfilling", cursor=done, counts={"total": 30, "done": done})
    assert (m.cursor, m.counts) == (30, {"total": 30, "done": 30})
    m = advance(reg, m.id, state="ready", report={"val": {"v1-v1": 0.9}})
    assert m.updated >= m.created and m.report == {"val": {"v1-v1": 0.9}}
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(InvalidInput, match="cursor"):
            advance(reg, m.id, cursor=bad)
    with pytest.raises(InvalidInput, match="unknown migration state"):
        advance(reg, m.id, state="done")
    m = advance(reg, m.id, state="swapped")
    m = advance(reg, m.id, state="rolled_back")
    with pytest.raises(InvalidInput, match="final"):
        advance(reg, m.id, cursor=5)
    assert advance(reg, m.id, report={"note": "rolled back by hand"}).report == {"note": "rolled back by hand"}
    with pytest.raises(NotFound):
        reg.get_migration(999)


def test_one_active_migration_per_gallery(reg, two_versions):
    reg.add_gallery("faces", version="v1", path="p")
    reg.add_gallery("other", version="v1", path="q")
    assert active_migration(reg, "faces") is None
    first = begin(reg, "faces", "v1", "v2", {})
    other = begin(reg, "other", "v1", "v2", {})
    assert active_migration(reg, "faces") == first
    with pytest.raises(InUse, match=f"#{first.id}"):
        begin(reg, "faces", "v1", "v2", {})
    with pytest.raises(InUse, match="migration"):
        reg.remove_gallery("faces", busy=ACTIVE_STATES)
    advance(reg, first.id, state="ready")
    assert active_migration(reg, "faces").state == "ready"
    advance(reg, first.id, state="swapped")
    assert active_migration(reg, "faces") is None
    second = begin(reg, "faces", "v2", "v1", {})
    assert [m.id for m in reg.migrations("faces")] == [first.id, second.id]
    assert [m.id for m in reg.migrations()] == [first.id, other.id, second.id]
    with pytest.raises(InvalidInput, match="both"):
        begin(reg, "other", "v1", "v1", {})
    with pytest.raises(NotFound):
        begin(reg, "nope", "v1", "v2", {})
    advance(reg, second.id, state="failed")
    reg.remove_gallery("faces", busy=ACTIVE_STATES)
    assert reg.migrations("faces") == []
