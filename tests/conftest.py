"""Shared fixtures: a micro recipe that trains in seconds, and a fresh registry root."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

MICRO = {
    "name": "micro",
    "seed": 0,
    "data": {"source": "synthetic", "image_size": 32, "train_identities": 24, "per_identity": 4,
             "val_identities": 8, "test_identities": 10, "eval_per_identity": 4},
    "model": {"backbone": "small_cnn", "backbone_args": {"widths": [8, 16]}, "dim": 16},
    "train": {"epochs": 1, "steps_per_epoch": 3, "p": 4, "k": 4, "optimizer": "adam", "lr": 0.01, "log_every": 1},
    "harmonic": {"head_steps": 2, "full_steps": 2, "prototype_renders": 4},
    "eval": {"fars": [0.1, 0.01]},
}


def write_recipe(path: Path, **sections) -> Path:
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in MICRO.items()}
    for key, value in sections.items():
        if isinstance(value, dict):
            raw[key] = {**raw.get(key, {}), **value}
        else:
            raw[key] = value
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(autouse=True)
def _restore_environment():
    """What a test may change for the whole process and must give back: the environment (Lightning's
    DDP launcher sets MASTER_ADDR/MASTER_PORT/NODE_RANK/... in the launching process) and torch's
    thread count (a run at 1 thread sums floats in another order than one at 2)."""
    import os

    import torch

    before, threads = dict(os.environ), torch.get_num_threads()
    yield
    for key in set(os.environ) - set(before):
        del os.environ[key]
    os.environ.update(before)
    torch.set_num_threads(threads)  # a test that pins 1 thread must not change later tests' float sums


@pytest.fixture
def micro_recipe(tmp_path) -> Path:
    return write_recipe(tmp_path / "micro.yaml")


@pytest.fixture
def registry_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "registry"
    monkeypatch.setenv("HARMONY_REGISTRY", str(root))
    return root


@pytest.fixture
def micro_demo_recipes(tmp_path) -> Path:
    """The demo's three recipes, shrunk to seconds (v2 wider than v1, as in the real ones)."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    write_recipe(recipes / "base-tiny.yaml")
    big = {"backbone_args": {"widths": [12, 24]}, "dim": 16}
    write_recipe(recipes / "base-tiny-large.yaml", model=big)
    write_recipe(recipes / "harmonic-tiny.yaml", model=big, harmonic={**MICRO["harmonic"], "v1_branch": True})
    return recipes
