"""Shared fixtures for the gallery, migration and their CLI tests: a registry of tiny untrained
versions (no training: a seeded 2-stage CNN, 16-D, 32 px) and folders of synthetic faces."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harmony.threads import torch_threads as one_thread

DIM = 16
SIZE = 32


@functools.lru_cache(maxsize=1)
def _calibration_images() -> np.ndarray:
    from harmony.data.synthetic import SynthConfig, render_set

    return render_set(16, 4, "train", SynthConfig(image_size=SIZE))[0]


def register_tiny(reg, name: str, seed: int, folder: Path, dim: int = DIM) -> None:
    """Register a seeded, untrained small_cnn embedder (16-D, 32 px) as version ``name``."""
    import torch

    from harmony.models.embedder import Embedder, EmbedderSpec

    torch.manual_seed(seed)
    m = Embedder(EmbedderSpec(dim=dim, image_size=SIZE, backbone_args={"widths": [8, 16]})).eval()
    # Untrained features all point one way; centring the head on their mean (over renders of
    # train-split identities, never the test faces) spreads the vectors over the sphere.
    calib = _calibration_images()
    with torch.no_grad():
        f = m.features(torch.from_numpy(calib).permute(0, 3, 1, 2))
        m.head.weight.div_(f.std(0)[None, :] + 1e-6)
        m.head.bias.copy_(-m.head.weight @ f.mean(0))
    path = folder / f"{name}.pt"
    torch.save(m.checkpoint(), path)
    reg.add_version(name, kind="base", artifact=path, backbone="small_cnn", dim=dim, meta={"spec": m.spec.as_dict()})


def record_verdict(reg, new: str, old: str, far: float, compatible: bool) -> None:
    """A compatibility row whose figures agree with the verdict (VAL(new->old) vs VAL(old,old))."""
    reg.record_compatibility(new, old, "synthetic-test", far,
                             {"old_old": 0.6, "new_new": 0.7, "new_old": 0.65 if compatible else 0.3,
                              "old_new": 0.65 if compatible else 0.3}, compatible)


def write_faces(root: Path, n_identities: int, per_identity: int, seed: int = 0, first_image: int = 0) -> Path:
    """ROOT/id<k>/<j>.png synthetic faces (test split identities)."""
    from PIL import Image

    from harmony.data.synthetic import SynthConfig, render_set

    images, labels = render_set(n_identities, per_identity, "test", SynthConfig(image_size=SIZE, seed=seed),
                                first_image=first_image)
    for i, (img, lab) in enumerate(zip(images, labels)):
        d = root / f"id{int(lab):03d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{first_image + i % per_identity:03d}.png")
    return root


@dataclass
class Env:
    reg: object
    root: Path  # registry root
    faces: Path  # 12 identities x 4 images
    tmp: Path


@pytest.fixture(scope="session")
def shared_versions(tmp_path_factory):
    """One registry with v1, v2, v3 (16-D) and v8 (8-D), copied per test (registering is the slow part)."""
    with one_thread():
        return _shared_versions(tmp_path_factory)


def _shared_versions(tmp_path_factory):
    from harmony.registry import Registry

    base = tmp_path_factory.mktemp("versions")
    reg = Registry.open(base / "registry")
    for name, seed in (("v1", 1), ("v2", 2), ("v3", 3)):
        register_tiny(reg, name, seed, base)
    register_tiny(reg, "v8", 8, base, dim=8)
    faces = write_faces(base / "faces", 12, 4)
    return base


@pytest.fixture
def env(shared_versions, tmp_path, monkeypatch):
    import shutil

    from harmony.registry import Registry

    root = Path(shutil.copytree(shared_versions / "registry", tmp_path / "registry"))
    faces = Path(shutil.copytree(shared_versions / "faces", tmp_path / "faces"))
    monkeypatch.setenv("HARMONY_REGISTRY", str(root))
    with one_thread():
        yield Env(Registry.open(root), root, faces, tmp_path)


def direct_vectors(reg, version: str, paths) -> np.ndarray:
    """The slow twin of the embedding path: PIL decode + resize, one forward pass of the checkpoint."""
    import torch
    from PIL import Image

    from harmony.models.embedder import embedder_from_checkpoint
    from harmony.models.loading import load_checkpoint

    model = embedder_from_checkpoint(load_checkpoint(reg, version))
    size = model.spec.image_size
    imgs = []
    for p in paths:
        with Image.open(p) as im:
            imgs.append(np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8))
    with torch.no_grad():
        return model(torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)).numpy()


def brute_force(queries: np.ndarray, vectors: np.ndarray, names: list[str], k: int) -> list[list[tuple[str, float]]]:
    """k nearest (name, squared L2) per query by a full numpy distance matrix."""
    d = ((queries[:, None, :].astype(np.float64) - vectors[None, :, :]) ** 2).sum(-1)
    out = []
    for row in d:
        order = np.argsort(row, kind="stable")[:k]
        out.append([(names[j], float(row[j])) for j in order])
    return out


def assert_same_hits(hits, expected, k: int, atol: float = 1e-4) -> None:
    """``hits`` (Hit lists) match the brute-force ranking ``expected`` (all items, from
    :func:`brute_force`) on the first k: distances within atol, item ids wherever no other item
    lies within 2 atol of that distance (a near-tie may come in either order)."""
    assert len(hits) == len(expected)
    for got, exp in zip(hits, expected):
        assert len(got) == min(k, len(exp))
        np.testing.assert_allclose([h.distance for h in got], [d for _, d in exp[:k]], atol=atol)
        for j, h in enumerate(got):
            name, dist = exp[j]
            if all(abs(dist - d) > 2 * atol for i, (_, d) in enumerate(exp) if i != j):
                assert h.item_id == name, (j, h, name)
