"""torch Datasets over in-memory arrays (synthetic) and image folders (real data).

Both yield dict batches ``{"x": (B,3,H,W) uint8, "y": (B,) int64, "idx": (B,) int64}``; ``idx``
is the row in the training set, so per-image caches (v1 embeddings) can be looked up.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Dataset

from harmony.data.images import load_image
from harmony.errors import InvalidInput

log = logging.getLogger(__name__)


def to_batch(images: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> dict:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
    return {"x": x, "y": torch.as_tensor(labels, dtype=torch.long), "idx": torch.as_tensor(idx, dtype=torch.long)}


def collate(batch: dict | list) -> dict:
    """Batches arrive pre-assembled from ``__getitems__``; a list of items is stacked."""
    if isinstance(batch, dict):
        return batch
    return {k: torch.stack([torch.as_tensor(b[k]) for b in batch]) for k in batch[0]}


class ArrayFaces(Dataset):
    """Images held in memory as (N, H, W, 3) uint8; batch fetch is one fancy-index."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, hflip: bool = False, seed: int = 0):
        if images.ndim != 4 or images.shape[-1] != 3:
            raise InvalidInput(f"images must be (N, H, W, 3) uint8, got shape {images.shape}")
        self.images, self.labels, self.hflip = images, np.asarray(labels, np.int64), hflip
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, indices: list[int]) -> dict:
        idx = np.asarray(indices)
        imgs = self.images[idx]
        if self.hflip:
            flip = self._rng.random(len(idx)) < 0.5
            imgs = np.where(flip[:, None, None, None], imgs[:, :, ::-1], imgs)
        return to_batch(imgs, self.labels[idx], idx)

    def __getitem__(self, i: int) -> dict:
        b = self.__getitems__([i])
        return {k: v[0] for k, v in b.items()}


class FolderFaces(Dataset):
    """Images decoded on demand. A file that fails to decode is logged with its path and replaced
    by another image of the same identity, so a bad file never stops a run nor breaks P x K."""

    def __init__(self, paths: list[str], labels: np.ndarray, size: int, hflip: bool = False):
        self.paths, self.labels, self.size, self.hflip = paths, np.asarray(labels, np.int64), size, hflip
        self.bad: set[int] = set()
        self._by_label: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, i: int) -> tuple[np.ndarray, int]:
        lab = int(self.labels[i])
        if lab not in self._by_label:
            self._by_label[lab] = np.flatnonzero(self.labels == lab)
        candidates = [i] + [int(j) for j in self._by_label[lab] if j != i]
        for j in candidates:
            if j in self.bad:
                continue
            try:
                return load_image(self.paths[j], self.size), j
            except InvalidInput as e:
                self.bad.add(j)
                log.warning("%s (substituting another image of the same identity)", e.message)
        raise InvalidInput(f"no readable image left for identity {lab}", hint="check the image folder")

    def __getitem__(self, i: int) -> dict:
        img, j = self._load(i)
        if self.hflip and np.random.random() < 0.5:
            img = img[:, ::-1]
        b = to_batch(img[None], self.labels[j : j + 1], np.asarray([i]))
        return {k: v[0] for k, v in b.items()}
