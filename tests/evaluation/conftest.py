"""Fixtures for evaluation tests: a fresh registry and tiny untrained versions registered in ms."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harmony.models.embedder import Embedder, EmbedderSpec
from harmony.models.fold import fold_batchnorm
from harmony.registry import Registry


@pytest.fixture()
def reg(tmp_path: Path) -> Registry:
    return Registry.open(tmp_path / "registry")


def tiny_model(seed: int = 0, dim: int = 16, image_size: int = 32) -> Embedder:
    torch.manual_seed(seed)
    return Embedder(EmbedderSpec(dim=dim, image_size=image_size, backbone_args={"widths": [8, 16]})).eval()


@pytest.fixture()
def add_tiny(reg: Registry, tmp_path: Path) -> Callable[..., Embedder]:
    """Register an untrained small_cnn as a base version; ``spec_meta`` records its spec in meta
    the way training does (without it the input size is learned by loading the model). Returns
    the network as ``load_encoder`` runs it (batch norms folded), so figures compare exactly."""

    def add(name: str, seed: int = 0, dim: int = 16, image_size: int = 32, spec_meta: bool = False) -> Embedder:
        model = tiny_model(seed, dim, image_size)
        path = tmp_path / "ckpt" / name / "model.pt"
        path.parent.mkdir(parents=True)
        torch.save(model.checkpoint(), path)
        reg.add_version(name, kind="base", artifact=path, backbone="small_cnn", dim=dim,
                        meta={"spec": model.spec.as_dict()} if spec_meta else None)
        return fold_batchnorm(model)

    return add


@pytest.fixture()
def count_encodes(monkeypatch) -> list[int]:
    """Counts TorchEncoder.encode calls (the number of images in each)."""
    from harmony.models.encode import TorchEncoder

    calls: list[int] = []
    original = TorchEncoder.encode

    def counting(self, images):
        calls.append(len(images))
        return original(self, images)

    monkeypatch.setattr(TorchEncoder, "encode", counting)
    return calls


def write_faces(root: Path, n_identities: int = 5, per_identity: int = 3, size: int = 32, seed: int = 0,
                lfw_names: bool = False) -> list[Path]:
    """Synthetic faces as PNG files: ROOT/<identity>/<image>.png (LFW naming: <name>/<name>_0001.png)."""
    from harmony.data.synthetic import SynthConfig, render_set

    images, labels = render_set(n_identities, per_identity, "test", SynthConfig(image_size=size, seed=seed))
    paths = []
    for i, (img, lab) in enumerate(zip(images, labels)):
        name = f"person{lab:02d}"
        j = i % per_identity + 1
        path = root / name / (f"{name}_{j:04d}.png" if lfw_names else f"{j:04d}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(img)).save(path)
        paths.append(path)
    return paths
