"""Fixtures for registry tests: a fresh registry per test and small real checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

from harmony.registry import Registry


@pytest.fixture()
def reg(tmp_path: Path) -> Registry:
    return Registry.open(tmp_path / "registry", timeout_s=10.0)


@pytest.fixture()
def make_ckpt(tmp_path: Path) -> Callable[..., Path]:
    """Write a small torch state dict (seeded) and return its path."""
    counter = iter(range(10**6))

    def make(seed: int = 0, name: str = "model.pt") -> Path:
        g = torch.Generator().manual_seed(seed)
        folder = tmp_path / "ckpts" / str(next(counter))
        folder.mkdir(parents=True)
        path = folder / name
        torch.save({"state_dict": {"embed.weight": torch.randn(8, 4, generator=g)}, "epoch": seed}, path)
        return path

    return make


@pytest.fixture()
def add(reg: Registry, make_ckpt: Callable[..., Path]) -> Callable[..., object]:
    """Register a base version with defaults for the fields a test does not care about."""

    def add_version(name: str, parent: str | None = None, kind: str = "base", seed: int = 0, **kw):
        return reg.add_version(name, kind=kind, artifact=make_ckpt(seed), backbone="tiny-cnn", dim=128,
                               parent=parent, **kw)

    return add_version
