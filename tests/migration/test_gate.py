"""The gate's verdict agrees with the registry's compatibility rows read directly (the newest row
at the FAR over every dataset; a version is compatible with itself; never measured: None), and
says where else it passes."""

from __future__ import annotations

import pytest

from harmony.migration.gate import verdict_view
from tests.gallery.helpers import record_verdict


def newest_row_verdict(reg, new: str, old: str, far: float) -> bool | None:
    """The rule written out over the raw rows: same version -> True; else the newest row at ``far``."""
    if reg.resolve(new) == reg.resolve(old):
        return True
    _, rows = reg.query("SELECT compatible FROM compatibility WHERE new_version = ? AND old_version = ? "
                        "AND abs(far - ?) <= 1e-9 * ? ORDER BY id DESC LIMIT 1", [new, old, far, far])
    return bool(rows[0][0]) if rows else None


def test_verdict_view_matches_the_registry_rows(env):
    reg = env.reg
    steps = [("v2", "v1", 1e-3, False), ("v2", "v1", 1e-2, True), ("v2", "v1", 1e-3, True),
             ("v3", "v1", 1e-3, True), ("v2", "v1", 1e-3, False)]
    for new, old, far, ok in steps:
        if far == 1e-3 and new == "v2" and ok is False and reg.compatibility("v2", "v1"):
            reg.record_compatibility(new, old, "other-set", far, {"old_old": 0.5, "new_new": 0.5, "new_old": 0.4,
                                                                  "old_new": 0.4}, ok)
        else:
            record_verdict(reg, new, old, far, ok)
        for n, o in (("v2", "v1"), ("v3", "v1"), ("v1", "v2")):
            for f in (1e-2, 1e-3):
                assert verdict_view(reg, n, o, f).verdict == newest_row_verdict(reg, n, o, f), (n, o, f)
    v = verdict_view(reg, "v2", "v1", 1e-3)
    assert v.verdict is False and v.passing_elsewhere() == [1e-2]
    assert "passes at FAR 0.01" in v.describe() and "other-set" in v.describe()
    assert verdict_view(reg, "v1", "v1", 1e-3).compatible


@pytest.mark.parametrize("verdict", [None, False])
def test_refusal_names_far_and_fix(env, verdict):
    if verdict is not None:
        record_verdict(env.reg, "v2", "v1", 1e-3, verdict)
    e = verdict_view(env.reg, "v2", "v1", 1e-3).refusal("prod", 7)
    assert "7 v1 vector(s) of gallery prod" in e.message and "FAR 0.001" in e.message
    assert "harmony migrate gallery --gallery prod --to v2" in e.hint
    assert ("harmony eval" in e.hint) == (verdict is None)
