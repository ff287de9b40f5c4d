"""Galleries of real files embedded by the deterministic fake embedder (HashEmbedder), and the
registry-backed ``env`` of tiny versions (tests.gallery.helpers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harmony.gallery.store import GalleryStore
from harmony.gallery.synthetic import HashEmbedder
from tests.gallery.helpers import env, shared_versions  # noqa: F401  (fixtures)
from tests.registry.conftest import add, make_ckpt, reg  # noqa: F401  (fixtures for test_states.py)

DIM = 32


@dataclass
class Gallery:
    store: GalleryStore
    src: Path  # folder of the source files

    def path_of(self, item_id: str) -> Path:
        return self.src / item_id

    def direct(self, version: str, item_ids, drift_from: str | None = None) -> np.ndarray:
        """The vectors an uninterrupted, from-scratch embedding of the current files would give."""
        emb = HashEmbedder(version, DIM, drift_from=drift_from)
        return np.stack([emb.vector(self.path_of(i).read_bytes()) for i in item_ids])

    def add(self, item_ids: list[str], version: str = "v1", content: str = "face") -> None:
        for i in item_ids:
            self.path_of(i).write_bytes(f"{content}-{i}".encode())
        vecs, ok = HashEmbedder(version, DIM)([str(self.path_of(i)) for i in item_ids])
        assert ok.all()
        self.store.add_items(item_ids, [str(self.path_of(i)) for i in item_ids],
                             [f"person{hash(i) % 17}" for i in item_ids], vecs, version)


@pytest.fixture
def make_gallery(tmp_path):
    def make(n: int, codec: str = "flat", name: str = "g") -> Gallery:
        src = tmp_path / f"{name}-src"
        src.mkdir()
        g = Gallery(GalleryStore.create(tmp_path / name, DIM, "v1", codec, use_gpu=False), src)
        g.add([f"item{i:05d}.img" for i in range(n)])
        return g
    return make
