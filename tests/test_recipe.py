from pathlib import Path

import pytest
import yaml

from harmony.errors import InvalidInput, NotFound
from harmony.recipe import load_recipe, load_transform_recipe, recipe_from_dict

RECIPES = sorted(Path(__file__).resolve().parents[1].joinpath("recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipes_load(path):
    r = (load_transform_recipe if "transform" in yaml.safe_load(path.read_text()) else load_recipe)(path)
    assert r.name == path.stem


def test_unknown_key_is_named():
    with pytest.raises(InvalidInput, match=r"'train\.lrr'.*") as e:
        recipe_from_dict({"train": {"lrr": 0.1}})
    assert "lr" in e.value.hint


def test_bad_value_lists_allowed():
    with pytest.raises(InvalidInput, match="train.mining") as e:
        recipe_from_dict({"train": {"mining": "random"}})
    assert "semihard" in e.value.hint
    with pytest.raises(InvalidInput, match="model.backbone"):
        recipe_from_dict({"model": {"backbone": "resnet9000"}})
    with pytest.raises(InvalidInput, match="train.epochs"):
        recipe_from_dict({"train": {"epochs": "ten"}})
    with pytest.raises(InvalidInput, match="data.path"):
        recipe_from_dict({"data": {"source": "folder"}})


def test_numbers_written_as_strings_and_overrides():
    r = recipe_from_dict({"train": {"lr": "2e-3"}})
    assert r.train.lr == 0.002
    r2 = r.override(**{"train.epochs": 2, "seed": 5, "train.p": None})
    assert (r2.train.epochs, r2.seed, r2.train.p) == (2, 5, r.train.p)
    assert recipe_from_dict(r2.to_dict()) == r2


def test_file_errors(tmp_path):
    with pytest.raises(NotFound):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_recipe(bad)
    notmap = tmp_path / "list.yaml"
    notmap.write_text("- 1\n- 2\n")
    with pytest.raises(InvalidInput, match="mapping"):
        load_recipe(notmap)


@pytest.mark.parametrize("sets,key", [
    (("train.loss=sphereface", "train.margin_loss.warmup_steps=100"), "train.margin_loss.warmup_steps"),
    (("train.margin_loss.warmup_steps=100",), "train.margin_loss.warmup_steps"),  # the triplet loss has no margin ramp
    (("train.loss=arcface", "train.margin_loss.warmup_steps=-1"), "train.margin_loss.warmup_steps"),
    (("train.loss=arcface", "train.margin_loss.classifier_lr_mult=0"), "train.margin_loss.classifier_lr_mult"),
])
def test_margin_warmup_and_classifier_lr_are_validated(sets, key):
    from harmony.recipe import with_sets

    with pytest.raises(InvalidInput, match=key.replace(".", r"\.")):
        with_sets(load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "base-tiny.yaml"), sets)
