"""Migration rows as the registry persists them: a compare-and-set on the prior state (the states
themselves and the allowed moves are harmony.migration.states' business, tested there)."""

from __future__ import annotations

import pytest

from harmony.errors import InUse, InvalidInput
from harmony.registry.galleries import StateConflict


def test_update_only_from_the_states_given(reg, add):
    add("v1")
    add("v2")
    reg.add_gallery("faces", version="v1", path="galleries/faces")
    m = reg.add_migration("faces", "v1", "v2", {"mode": "mixed"}, state="a", busy=("a", "b"))
    assert m.state == "a"
    with pytest.raises(InUse, match=f"#{m.id}"):
        reg.add_migration("faces", "v1", "v2", {}, state="a", busy=("a",))
    assert reg.update_migration(m.id, state="b", from_states=("a",)).state == "b"
    with pytest.raises(StateConflict, match="is b, not one of a") as e:
        reg.update_migration(m.id, state="c", cursor=3, from_states=("a",))
    assert e.value.state == "b" and isinstance(e.value, InvalidInput)
    after = reg.get_migration(m.id)
    assert (after.state, after.cursor) == ("b", None)  # nothing written
    with pytest.raises(StateConflict):
        reg.update_migration(m.id, report={"x": 1}, from_states=())
    assert reg.update_migration(m.id, state="c").state == "c"  # no from_states: a plain write
    assert [x.id for x in reg.migrations("faces", states=("c",))] == [m.id]
    assert reg.migrations("faces", states=("a", "b")) == []
    with pytest.raises(InUse):
        reg.remove_gallery("faces", busy=("c",))
    reg.remove_gallery("faces")
    assert reg.migrations() == []
