"""harmonic.v1_branch: v2 carries v1's body as a frozen branch and starts exactly as v1."""

from __future__ import annotations

import copy

import pytest
import torch
from typer.testing import CliRunner

from harmony.cli.main import app
from harmony.errors import InvalidInput
from harmony.models.branched import BranchedBody
from harmony.models.embedder import embedder_from_checkpoint
from harmony.models.encode import TorchEncoder
from harmony.recipe import recipe_from_dict
from harmony.training.base import fit_base
from harmony.training.harmonic import branch_v1, fit_harmonic
from tests.conftest import MICRO, write_recipe

BIG = {**MICRO["model"], "backbone_args": {"widths": [12, 24]}}


def _recipe(**harmonic):
    return recipe_from_dict({**MICRO, "model": BIG, "harmonic": {**MICRO["harmonic"], "v1_branch": True, **harmonic}})


@pytest.fixture(scope="module")
def v1_and_init():
    v1, _ = fit_base(recipe_from_dict(MICRO))
    init, _ = fit_base(recipe_from_dict({**MICRO, "model": BIG, "seed": 1}))
    return v1.eval(), init.eval()


def _x(n: int = 6) -> torch.Tensor:
    return torch.randint(0, 255, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_branched_v2_starts_as_v1_and_survives_a_checkpoint(v1_and_init):
    v1, init = v1_and_init
    v2 = branch_v1(v1, copy.deepcopy(init), _recipe())
    with torch.no_grad():
        torch.testing.assert_close(v2(_x()), v1(_x()))
        back = embedder_from_checkpoint(v2.checkpoint()).eval()
        torch.testing.assert_close(back(_x()), v2(_x()))
    assert isinstance(back.body, BranchedBody) and not any(p.requires_grad for p in back.body.old.parameters())


def test_training_never_moves_v1s_branch_and_does_move_the_rest(v1_and_init):
    v1, init = v1_and_init
    v2, _ = fit_harmonic(_recipe(head_steps=2, full_steps=3), TorchEncoder(v1), copy.deepcopy(init),
                         old_model=copy.deepcopy(v1))
    for k, t in v1.body.state_dict().items():  # BatchNorm running statistics included
        torch.testing.assert_close(v2.body.old.state_dict()[k], t, msg=k)
    assert not torch.equal(v2.body.new.state_dict()["0.0.weight"], init.body.state_dict()["0.0.weight"])
    assert v2.head.weight[:, v1.head.in_features:].abs().sum() > 0  # the new body's columns learned something
    assert not any(p.requires_grad for p in v2.body.old.parameters())


def test_frozen_new_stages_cache_v1_and_train_only_the_rest(v1_and_init):
    """Stage 2 with ``frozen_stages``: the cache (v1's features, the new body's lower maps) gives
    the full forward, and only the new body's upper stages and the head move."""
    v1, init = v1_and_init
    start = branch_v1(v1, copy.deepcopy(init), _recipe())
    with torch.no_grad():
        f_old, z = start.lower_features(_x(), 1)
        torch.testing.assert_close(start.embed_features(start.upper_features((f_old, z.half().float()), 1)),
                                   start(_x()), atol=1e-2, rtol=0)
    assert start.n_stages() == 2
    v2, _ = fit_harmonic(_recipe(head_steps=2, full_steps=3, frozen_stages=1), TorchEncoder(v1), copy.deepcopy(init),
                         old_model=copy.deepcopy(v1))
    for k, t in v1.body.state_dict().items():
        torch.testing.assert_close(v2.body.old.state_dict()[k], t, msg=k)
    new_before, new_after = init.body.state_dict(), v2.body.new.state_dict()
    for k in new_before:
        if k.startswith("0."):  # the frozen first stage, BatchNorm statistics included
            torch.testing.assert_close(new_after[k], new_before[k], msg=k)
    assert any(not torch.equal(new_after[k], new_before[k]) for k in new_before if k.startswith("1.") and "weight" in k)


def test_branch_needs_v1s_network_and_its_pixels(v1_and_init):
    v1, init = v1_and_init
    with pytest.raises(InvalidInput, match="v1's own network"):
        fit_harmonic(_recipe(), TorchEncoder(v1), copy.deepcopy(init))
    other = recipe_from_dict({**MICRO, "model": BIG, "data": {**MICRO["data"], "image_size": 40}})
    with pytest.raises(InvalidInput, match="feeds one image to both bodies"):
        branch_v1(v1, None, other)


def test_cli_trains_exports_and_refuses_an_external_v1(tmp_path, micro_recipe, registry_root):
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    big = write_recipe(tmp_path / "big.yaml", model=BIG, harmonic={"v1_branch": True})
    for name, rec in [("v1", micro_recipe), ("v2-base", big)]:
        assert invoke("train", "base", "--recipe", rec, "--name", name, "--quiet", "--registry",
                      registry_root).exit_code == 0
    r = invoke("train", "harmonic", "--from", "v1", "--init", "v2-base", "--recipe", big, "--name", "v2", "--quiet",
               "--registry", registry_root)
    assert r.exit_code == 0, r.output
    from harmony.registry import Registry

    reg = Registry.open(registry_root)
    v2 = reg.get_version("v2")
    assert v2.backbone == "branched" and v2.meta["cost"]["params"] > reg.get_version("v2-base").meta["cost"]["params"]
    for name in ("v2", "v1"):  # the branched v2 exports like any network; v1's export comes back external
        r = invoke("registry", "export-model", name, "--format", "torchscript", "--out", tmp_path / f"{name}.pt", "--registry",
                   registry_root)
        assert r.exit_code == 0, r.output
    assert invoke("registry", "add-external", "legacy", "--adapter", "torchscript", "--file", tmp_path / "v1.pt", "--registry",
                  registry_root).exit_code == 0
    r = invoke("train", "harmonic", "--from", "legacy", "--recipe", big, "--name", "v2x", "--quiet", "--registry",
               registry_root)
    assert r.exit_code == 2 and "external model" in r.output and "v1_branch" in r.output
    assert not (registry_root / "runs" / "v2x").exists()
