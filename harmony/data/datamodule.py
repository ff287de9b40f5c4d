"""The LightningDataModule: owns datasets, seeded identity splits and P x K loaders."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from harmony.data.datasets import ArrayFaces, FolderFaces, collate
from harmony.data.folder import FolderIndex, identity_split, scan_folder, subset
from harmony.data.images import load_images
from harmony.data.sampler import PKBatchSampler
from harmony.data.synthetic import SynthConfig, render_set
from harmony.errors import InvalidInput
from harmony.recipe import DataSpec, TrainSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledImages:
    """An evaluation set held in memory: (n, H, W, 3) uint8 + (n,) labels, with a cache key."""

    images: np.ndarray
    labels: np.ndarray
    key: str


def worker_init(_: int) -> None:
    """Forked workers must not reuse the parent's OpenMP pool (DESIGN section 7: fork hang)."""
    torch.set_num_threads(1)
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:
        pass


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


class FaceDataModule(L.LightningDataModule):
    def __init__(self, data: DataSpec, train: TrainSpec, seed: int = 0):
        super().__init__()
        self.data, self.train_spec, self.seed = data, train, seed
        self.train_set: ArrayFaces | FolderFaces | None = None
        self.train_labels: np.ndarray | None = None
        self.val: LabelledImages | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        d = self.data
        if d.source == "synthetic":
            tr = synthetic_split(d, "train")
            self.train_set = ArrayFaces(tr.images, tr.labels, self.train_spec.hflip, self.seed)
            self.train_labels = tr.labels
            self.train_key = tr.key
        else:
            index = folder_split(d, "train")
            self.train_set = FolderFaces(index.paths, index.labels, d.image_size, self.train_spec.hflip)
            self.train_labels = index.labels
            self.train_key = f"folder:{index.root}:train:{len(index)}"
        self.val = eval_set(d, "val")
        log.info("train: %d images of %d identities; val: %d images", len(self.train_set),
                 len(np.unique(self.train_labels)), len(self.val.images))

    def train_dataloader(self) -> DataLoader:
        t = self.train_spec
        trainer = self.trainer
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        epoch = trainer.current_epoch if trainer is not None else 0
        sampler = PKBatchSampler(self.train_labels, t.p, t.k, t.steps_per_epoch, self.seed, rank, world)
        sampler.set_epoch(epoch)
        workers = self.data.num_workers
        return DataLoader(self.train_set, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                          worker_init_fn=worker_init if workers else None,
                          multiprocessing_context="forkserver" if workers else None,
                          persistent_workers=False)
