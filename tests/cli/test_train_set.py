"""``--set KEY=VALUE`` on the train commands: parsed as YAML, applied to the dotted key, validated
like a recipe file (a bad one: one line naming the key, exit 2, nothing written), recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harmony.cli.main import app
from harmony.errors import InvalidInput
from harmony.recipe import load_recipe, load_transform_recipe, with_sets


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_values_are_yaml_and_keys_dotted(micro_recipe):
    r = load_recipe(micro_recipe)
    got = with_sets(r, ["model.dim=8", "train.lr=1e-3", "eval.fars=[0.1, 0.001]", "train.loss=cosface",
                        "train.margin_loss.scale=20", "model.backbone_args.widths=[4, 8]", "train.sync_batchnorm=null",
                        "description=a b=c"])
    assert got.model.dim == 8 and got.train.lr == 0.001 and got.eval.fars == (0.1, 0.001)
    assert got.train.loss == "cosface" and got.train.margin_loss.scale == 20.0
    assert got.model.backbone_args == {"widths": [4, 8]} and got.description == "a b=c"
    assert with_sets(r, []) is r


@pytest.mark.parametrize("item,named,fix", [
    ("model.dims=64", "model.dims", "dim"),
    ("modle.dim=64", "modle", "model"),
    ("model.dim=big", "model.dim", None),
    ("model.dim=1", "model.dim", None),
    ("train.loss=softmax", "train.loss", "arcface"),
    ("train.lr.x=1", "train.lr", "--set train.lr=VALUE"),
    ("model.dim", "model.dim", "KEY=VALUE"),
    ("model.dim=", "model.dim", "VALUE"),
    ("model.dim=[1", "model.dim", "YAML"),
])
def test_bad_sets_name_the_key_and_the_fix(micro_recipe, item, named, fix):
    with pytest.raises(InvalidInput) as e:
        with_sets(load_recipe(micro_recipe), [item])
    assert named in e.value.message and "\n" not in str(e.value)
    if fix:
        assert fix in str(e.value)


def test_transform_recipes_take_sets_too(tmp_path):
    r = load_transform_recipe("recipes/transform-tiny.yaml")
    assert with_sets(r, ["transform.steps=7"]).transform.steps == 7
    with pytest.raises(InvalidInput, match="'model'"):
        with_sets(r, ["model.dim=64"])  # a transform recipe has no model section


def test_train_base_set_trains_the_overridden_recipe_and_records_it(micro_recipe, registry_root):
    r = invoke("train", "base", "--recipe", micro_recipe, "--name", "v1", "--set", "model.dim=8", "--set",
               "train.margin=0.3", "--quiet", "--registry", registry_root)
    assert r.exit_code == 0, r.output
    from harmony.registry import Registry

    v = Registry.open(registry_root).get_version("v1")
    recorded = yaml.safe_load(v.recipe)
    assert v.dim == 8 and recorded["model"]["dim"] == 8 and recorded["train"]["margin"] == 0.3


@pytest.mark.parametrize("command", [
    ["train", "base", "--name", "x"],
    ["train", "harmonic", "--from", "v1", "--name", "x"],
])
def test_bad_set_on_the_cli_exits_2_and_writes_nothing(tmp_path, micro_recipe, registry_root, command):
    r = invoke(*command, "--recipe", micro_recipe, "--set", "train.lossx=arcface", "--registry", registry_root)
    assert r.exit_code == 2
    assert "train.lossx" in r.output and "fix:" in r.output and "loss" in r.output
    assert not registry_root.exists()  # refused before the registry is opened (or created)


def test_bad_set_on_train_transform_exits_2(tmp_path, registry_root):
    recipe = tmp_path / "t.yaml"
    recipe.write_text(Path("recipes/transform-tiny.yaml").read_text())
    r = invoke("train", "transform", "--from", "v1", "--to", "v2", "--name", "e", "--recipe", recipe,
               "--set", "transform.steps=many", "--registry", registry_root)
    assert r.exit_code == 2 and "transform.steps" in r.output
    assert not registry_root.exists()
