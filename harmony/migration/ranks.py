"""The Lightning side of a distributed backfill (distributed.py): what each rank runs.

Module-level classes, so that the DDP launcher can pickle them to the ranks; a module of their own,
so that importing the backfill does not import Lightning. Each rank: ``ShardData`` lists the
unfinished batches of its shards (from the gallery folder, never the registry), ``ShardModule``
embeds them in ``predict_step``, ``ShardWriterCallback`` commits each under its shard's cursor.
"""

from __future__ import annotations

import os
from dataclasses import replace
from functools import partial
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader

from harmony.gallery.store import GalleryStore
from harmony.machine import usable_cpus
from harmony.migration.backfill import _as_is, embed_stages, reader_init, watch_parent
from harmony.migration.checkpoint import BackfillDir
from harmony.migration.distributed import ShardBatch, ShardItems, ShardWriter, shard_batches


class ShardModule(L.LightningModule):
    """Embeds a rank's batches: ``embed_fn(sources)``, or (``staged``) the encode half of the
    batches its DataLoader workers read."""

    def __init__(self, embed_fn: Any, accelerator: str, staged: bool, parent: int):
        super().__init__()
        self.embed_fn, self.accelerator, self.staged, self.parent = embed_fn, accelerator, staged, parent
        self.encode: Any = None
        # across nodes every rank joins, also one whose shards are all done (a resumed run)
        self.allow_zero_length_dataloader_with_multiple_devices = True

    def setup(self, stage: str) -> None:
        watch_parent(self.parent)  # a killed backfill takes its ranks with it
        if self.accelerator == "cpu":  # the ranks share this machine's cores
            torch.set_num_threads(max(1, usable_cpus() // max(1, self.trainer.num_devices)))
        elif hasattr(self.embed_fn, "device"):  # one GPU per rank: this rank's
            self.embed_fn = replace(self.embed_fn, device=str(self.device))
        if self.staged:
            self.encode = embed_stages(self.embed_fn)[1]

    def transfer_batch_to_device(self, batch: Any, device: Any, dataloader_idx: int) -> Any:
        """Batches are numpy (ids, decoded pixels or paths): the embed function moves what it encodes."""
        return batch

    def predict_step(self, batch: ShardBatch, batch_idx: int) -> tuple[np.ndarray, np.ndarray]:
        if batch.ids.size == 0:  # all removed since the split: the writer commits it empty
            return None, None
        return self.encode(batch.payload) if self.staged else self.embed_fn(batch.payload)


class ShardData(L.LightningDataModule):
    """Rank r of w takes shards ``ks[r::w]``; its DataLoader yields only their unfinished batches."""

    def __init__(self, gallery: str, target: str, dim: int, ks: tuple[int, ...], batch_size: int, workers: int,
                 kill_hook: str = ""):
        super().__init__()
        self.gallery, self.target, self.dim, self.ks = gallery, target, dim, ks
        self.batch_size, self.workers, self.kill_hook = batch_size, workers, kill_hook
        self.writer: ShardWriter | None = None

    def predict_dataloader(self) -> DataLoader:
        rank, world = self.trainer.global_rank, self.trainer.world_size
        store = GalleryStore.open(self.gallery, use_gpu=False)
        bdir = BackfillDir(store.path, self.target)
        self.writer = ShardWriter(bdir, self.dim, rank, self.kill_hook)  # claims (locks) this rank's shards
        items = shard_batches(store, bdir, bdir.read_shards(bdir.read_cursor()), self.ks[rank::world],
                              self.batch_size, self.writer)
        reader = embed_stages(self.trainer.lightning_module.embed_fn)[0] if self.workers else None
        return DataLoader(ShardItems(tuple(items), reader), batch_size=None, collate_fn=_as_is,
                          num_workers=self.workers,
                          worker_init_fn=partial(reader_init, os.getpid()) if self.workers else None,
                          multiprocessing_context="forkserver" if self.workers else None)

    def teardown(self, stage: str) -> None:
        if self.writer is not None:
            self.writer.close()


class ShardWriterCallback(BasePredictionWriter):
    """Commits every predicted batch under its shard's cursor (``ShardData.writer``), as soon as
    it is embedded."""

    def __init__(self) -> None:
        super().__init__(write_interval="batch")

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Any, batch_indices: Any,
                           batch: ShardBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        vecs, ok = prediction
        trainer.datamodule.writer.commit(batch, vecs, ok)
