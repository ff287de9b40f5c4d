"""Harmonic stage 2 with a partly frozen body: cached lower features, frozen weights untouched."""

from __future__ import annotations

import copy

import pytest
import torch

from harmony.errors import InvalidInput
from harmony.models.encode import TorchEncoder
from harmony.recipe import recipe_from_dict
from harmony.training.base import fit_base
from harmony.training.harmonic import fit_harmonic
from tests.conftest import MICRO


def _recipe(**harmonic):
    return recipe_from_dict({**MICRO, "harmonic": {**MICRO["harmonic"], **harmonic}})


@pytest.fixture(scope="module")
def v1_and_init():
    v1, _ = fit_base(recipe_from_dict(MICRO))
    init, _ = fit_base(recipe_from_dict({**MICRO, "seed": 1}))
    return v1.eval(), init.eval()


def test_frozen_stage_keeps_its_weights_and_trains_the_rest(v1_and_init):
    v1, init = v1_and_init
    start = copy.deepcopy(init)
    assert start.n_stages() == 2
    v2, _ = fit_harmonic(_recipe(frozen_stages=1, head_steps=0, full_steps=3), TorchEncoder(v1), copy.deepcopy(init))
    before, after = start.body.state_dict(), v2.body.state_dict()
    for k in before:
        if k.startswith("0."):  # the frozen first stage, BatchNorm statistics included
            torch.testing.assert_close(after[k], before[k], msg=k)
    assert any(not torch.equal(after[k], before[k]) for k in before if k.startswith("1.") and "weight" in k)


def test_cached_lower_features_give_the_same_forward(v1_and_init):
    _, init = v1_and_init
    x = torch.randint(0, 255, (5, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        z = init.lower_features(x, 1)
        assert torch.allclose(init.embed_features(init.upper_features(z.half().float(), 1)), init(x), atol=1e-2)


def test_too_many_frozen_stages_is_one_line(v1_and_init):
    v1, init = v1_and_init
    with pytest.raises(InvalidInput, match="frozen_stages is 2"):
        fit_harmonic(_recipe(frozen_stages=2, head_steps=0, full_steps=2), TorchEncoder(v1), copy.deepcopy(init))
