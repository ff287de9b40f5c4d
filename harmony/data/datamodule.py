"""The LightningDataModule: owns datasets, seeded identity splits and P x K loaders."""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from harmony.data.datasets import ArrayFaces, FolderFaces, collate
from harmony.data.sampler import PKBatchSampler
from harmony.data.splits import LabelledImages, eval_set, folder_split, synth_config, synthetic_split  # noqa: F401
from harmony.recipe import DataSpec, TrainSpec

log = logging.getLogger(__name__)


def worker_init(_: int) -> None:
    """Forked workers must not reuse the parent's OpenMP pool (DESIGN section 7: fork hang)."""
    torch.set_num_threads(1)
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:
        pass


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
