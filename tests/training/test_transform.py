"""The transform h (models/transform.py), its fit on cached embeddings and its measured table
(training/transform.py), and the transform recipe (recipe.py): no registry, no images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from harmony.errors import IntegrityError, InvalidInput
from harmony.metrics import gain_recovered, val_at_far
from harmony.models.transform import (Transform, TransformNetSpec, apply_transform, transform_from_checkpoint)
from harmony.recipe import load_recipe, load_transform_recipe, transform_recipe_from_dict
from harmony.training.transform import PairedSet, fit_transform, least_squares, transform_table

DATA = {"source": "synthetic", "image_size": 32, "train_identities": 24, "per_identity": 4, "val_identities": 8,
        "test_identities": 10, "eval_per_identity": 4}


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def paired(n_ids: int, per: int, seed: int, d_in: int = 16, d_out: int = 24, noise: float = 0.35) -> PairedSet:
    """Two 'versions' of one labelled set: v1 = identity centre + noise; v2 = a fixed non-linear
    function of v1 (the same across calls: rng seeded 99), so h is learnable."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, d_in))
    labels = np.repeat(np.arange(n_ids), per)
    v1 = _unit(centres[labels] + noise * rng.normal(size=(len(labels), d_in)))
    f = np.random.default_rng(99)
    a, b = f.normal(size=(d_in, 32)), f.normal(size=(32, d_out))
    v2 = _unit(np.tanh(2 * v1 @ a) @ b)
    return PairedSet(v1, v2, labels, f"toy:{seed}")


def recipe(**transform):
    return transform_recipe_from_dict({"seed": 0, "data": DATA, "transform": {"p": 8, "k": 4, **transform},
                                       "eval": {"fars": [0.1, 0.01]}})


def test_net_maps_unit_rows_and_round_trips_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(0)
    h = Transform(TransformNetSpec(in_dim=16, out_dim=24, hidden=32, blocks=2, norm="layer"))
    with torch.no_grad():  # the residual branch starts at zero: give it weights to carry
        h.out.weight.normal_()
    x = _unit(np.random.default_rng(0).normal(size=(10, 16)))
    y = apply_transform(h, x)
    assert y.shape == (10, 24) and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    torch.save(h.checkpoint(), tmp_path / "h.pt")
    back = transform_from_checkpoint(torch.load(tmp_path / "h.pt", weights_only=True))
    np.testing.assert_allclose(apply_transform(back, x), y, atol=1e-6)
    with pytest.raises(InvalidInput, match="takes 16-D vectors"):
        apply_transform(h, x[:, :8])
    with pytest.raises(IntegrityError, match="not a harmony transform"):
        transform_from_checkpoint({"format": "harmony.embedder/1"})
    bad = h.checkpoint() | {"spec": {**h.spec.as_dict(), "hidden": 8}}
    with pytest.raises(IntegrityError, match="does not match its spec"):
        transform_from_checkpoint(bad)


def test_least_squares_is_the_linear_start_and_blocks_0_keeps_it_linear():
    s = paired(30, 4, 0)
    w = least_squares(s.old, s.new, ridge=0.0)
    expected = np.linalg.lstsq(s.old.astype(np.float64), s.new.astype(np.float64), rcond=None)[0].T
    np.testing.assert_allclose(w, expected, atol=1e-4)
    fit = fit_transform(recipe(blocks=0, steps=1, lr=1e-9), s)
    assert fit.model.out is None  # no residual branch: h = normalise(P x)
    np.testing.assert_allclose(apply_transform(fit.model, s.old), _unit(s.old @ least_squares(s.old, s.new).T),
                               atol=1e-4)


def test_fit_learns_a_nonlinear_map_better_than_the_best_linear_one():
    train, test = paired(500, 6, 1), paired(40, 6, 2)
    fit = fit_transform(recipe(steps=600, lr=1e-2, hidden=128, p=32), train)
    mapped = apply_transform(fit.model, test.old)
    lin = _unit(test.old @ least_squares(train.old, train.new).T)
    err = ((mapped - test.new) ** 2).sum(1).mean()
    assert err < 0.5 * ((lin - test.new) ** 2).sum(1).mean()  # the MLP beats the best linear map on new identities
    assert fit.history[-1]["loss"] < fit.history[0]["loss"]
    tab = transform_table(test, mapped, (0.1, 0.01))
    row = tab["rows"][0]
    # the table is the metrics' own figures, recomputed here
    assert row["val_from_from"] == val_at_far(test.old, test.labels, [0.1])[0].val
    assert row["val_to_to"] == val_at_far(test.new, test.labels, [0.1])[0].val
    cross = val_at_far(test.new, test.labels, [0.1], gallery=mapped)[0].val
    assert row["val_to_mapped"] == pytest.approx(cross, abs=1e-9)
    assert row["val_mapped_mapped"] == val_at_far(mapped, test.labels, [0.1])[0].val
    assert row["gain_recovered"] == gain_recovered(row["val_from_from"], cross, row["val_to_to"])
    assert row["val_to_from_without_h"] is None  # 16-D v1, 24-D v2: no raw cross figure
    assert (tab["n_images"], tab["n_identities"]) == (240, 40)
    tight = transform_table(test, mapped, (0.01,))["rows"][0]
    assert tight["val_to_mapped"] > 0.8 and tight["val_to_mapped"] > 0.9 * tight["val_to_to"]


def test_selection_on_val_keeps_the_best_step():
    train, val = paired(60, 4, 3), paired(20, 4, 4)
    fit = fit_transform(recipe(steps=60, eval_every=20, lr=3e-3), train, val)
    scored = [h for h in fit.history if "val_cross" in h]
    assert [h["step"] for h in scored] == [20, 40, 60]
    best = max(scored, key=lambda h: h["val_cross"])
    assert fit.best_step == best["step"]
    from harmony.training.transform import cross_val

    assert cross_val(fit.model, val, 0.01) == pytest.approx(best["val_cross"])
    with pytest.raises(InvalidInput, match="eval_every needs the val identities"):
        fit_transform(recipe(steps=5, eval_every=5), train)
    with pytest.raises(InvalidInput, match="transform.p = 70"):
        fit_transform(recipe(steps=5, p=70), train)


def test_the_shipped_recipe_loads_and_bad_recipes_are_refused(tmp_path):
    r = load_transform_recipe("recipes/transform-tiny.yaml")
    assert (r.transform.l2_weight, r.transform.init, r.data.train_identities) == (1.0, "lstsq", 2000)
    assert r.override(seed=3, **{"transform.steps": 7}).transform.steps == 7

    def write(raw) -> str:
        p = tmp_path / "t.yaml"
        p.write_text(yaml.safe_dump(raw))
        return str(p)

    good = {"data": DATA, "transform": {"steps": 5}}
    cases = [
        ({**good, "model": {"dim": 16}}, "has no 'model' section: those train networks"),
        ({"data": DATA}, "has no 'transform' section"),
        ({**good, "transform": {"stpes": 5}}, "unknown recipe key 'transform.stpes'"),
        ({**good, "transform": {"k": 9}}, "'transform.k' is 9 but data.per_identity renders only 4"),
        ({**good, "transform": {"l2_weight": 0.0}}, "need at least one > 0"),
        ({**good, "transform": {"norm": "group"}}, "'transform.norm' is 'group'"),
        ({**good, "transform": {"lr": -1}}, "'transform.lr' must be > 0"),
    ]
    for raw, message in cases:
        with pytest.raises(InvalidInput, match=message) as err:
            load_transform_recipe(write(raw))
        assert "\n" not in str(err.value)
    with pytest.raises(InvalidInput, match="unknown recipe key 'transform'"):
        load_recipe(write({"data": DATA, "model": {"dim": 16}, "train": {"k": 4}, "transform": {"steps": 5}}))
