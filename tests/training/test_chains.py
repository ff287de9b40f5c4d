"""Chains: v3 trained harmonic from v2 (itself from v1) records v3 vs v2 and v3 vs v1, both measured."""

from __future__ import annotations

import pytest

from harmony.data.datamodule import eval_set
from harmony.metrics import compatibility_report
from harmony.models.loading import load_encoder
from harmony.recipe import recipe_from_dict
from harmony.registry import Registry
from harmony.training.base import train_base
from harmony.training.harmonic import train_harmonic
from tests.conftest import MICRO


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    reg = Registry.open(tmp_path_factory.mktemp("chain") / "registry")
    recipe = recipe_from_dict(MICRO)
    train_base(reg, recipe, "v1")
    train_harmonic(reg, recipe, "v2", "v1")
    res = train_harmonic(reg, recipe.override(seed=1), "v3", "v2")
    return reg, recipe, res


def test_v3_is_measured_against_v1_too(chain):
    reg, recipe, res = chain
    assert [a.old_name for a in res.ancestors] == ["v1"]
    rows = reg.compatibility("v3", "v1")
    assert {r.far for r in rows} == set(recipe.eval.fars)
    test = eval_set(recipe.data, "test")
    want = compatibility_report(load_encoder(reg, "v1").encode(test.images), load_encoder(reg, "v3").encode(test.images),
                                test.labels, recipe.eval.fars)
    for r in rows:
        w = want.row(r.far)
        assert r.table["new_old"] == pytest.approx(w.new_old.val, abs=1e-9)
        assert r.table["old_old"] == pytest.approx(w.old_old.val, abs=1e-9)
        assert r.compatible == w.compatible
    assert reg.compatibility("v3", "v2")  # its parent, as for any harmonic run


def test_v2_has_no_ancestor_rows(chain):
    reg, _, _ = chain
    assert reg.compatibility("v2", "v1") and not reg.compatibility("v1", "v2")
