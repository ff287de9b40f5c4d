"""Seeded identity splits as labelled sets: synthetic renders, or a folder split by identity.

Kept apart from the LightningDataModule (``datamodule.py``) so code that only needs a labelled
split (transform training, evaluation) does not import Lightning.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from harmony.data.folder import FolderIndex, identity_split, scan_folder, subset
from harmony.data.images import load_images
from harmony.data.synthetic import SynthConfig, render_set
from harmony.errors import InvalidInput
from harmony.recipe import DataSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledImages:
    """An evaluation set held in memory: (n, H, W, 3) uint8 + (n,) labels, with a cache key."""

    images: np.ndarray
    labels: np.ndarray
    key: str


def synth_config(spec: DataSpec) -> SynthConfig:
    return SynthConfig(image_size=spec.image_size, seed=spec.synth_seed)


@functools.lru_cache(maxsize=4)
def _rendered(n: int, k: int, split: str, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """One process renders a split once: a story that trains v1, v2-base and a harmonic v2 on the
    same faces (the demo, the bench) reuses them. Shared arrays: callers never write into them."""
    return render_set(n, k, split, cfg)


def synthetic_split(spec: DataSpec, split: str, n_identities: int | None = None, per_identity: int | None = None) -> LabelledImages:
    n = n_identities or {"train": spec.train_identities, "val": spec.val_identities, "test": spec.test_identities}[split]
    k = per_identity or (spec.per_identity if split == "train" else spec.eval_per_identity)
    images, labels = _rendered(n, k, split, synth_config(spec))
    return LabelledImages(images, labels, f"synthetic:{split}:seed{spec.synth_seed}:{n}x{k}:{spec.image_size}px")


def folder_split(spec: DataSpec, split: str) -> FolderIndex:
    """Identities of a folder assigned to train/val/test by name hash, or a separate eval folder."""
    if split != "train" and spec.eval_path:
        return scan_folder(spec.eval_path, spec.min_images)
    index = scan_folder(spec.path, spec.min_images)
    if spec.eval_path:
        return index
    which = identity_split(index.identities, spec.split)
    keep = {n for n, s in zip(index.identities, which) if s == split}
    if not keep:
        raise InvalidInput(f"the {split} split of {spec.path} is empty", hint="adjust data.split or set data.eval_path")
    return subset(index, keep)


def eval_set(spec: DataSpec, split: str = "test") -> LabelledImages:
    """Held-out identities as an in-memory labelled set (train identities never appear)."""
    if spec.source == "synthetic":
        return synthetic_split(spec, split)
    index = folder_split(spec, split)
    decoded = load_images(index.paths, spec.image_size)
    for bad in decoded.unusable:
        log.warning("%s", bad.reason)
    return LabelledImages(decoded.images, index.labels[decoded.ok],
                          f"folder:{index.root}:{split}:{len(index)}:{spec.image_size}px")
