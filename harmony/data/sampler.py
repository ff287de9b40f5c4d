"""P x K batch sampling: P identities, K images each, so every batch has positives to mine."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from harmony.errors import InvalidInput

log = logging.getLogger(__name__)


class PKBatchSampler:
    """Yields ``steps`` batches of indices; identities with fewer than K images are drawn with
    replacement (duplicates are harmless to the miner: a duplicate is a zero-distance positive).

    Deterministic per (seed, epoch); call ``set_epoch`` to advance like DistributedSampler.
    Under DDP (``num_replicas > 1``) every rank makes the same global draw of P identities per step
    from the shared (seed, epoch) and keeps its chunk of P / num_replicas whole identities, so the
    chunks concatenated in rank order are exactly the single-process batch.
    """

    def __init__(self, labels: np.ndarray, p: int, k: int, steps: int, seed: int = 0,
                 rank: int = 0, num_replicas: int = 1):
        labels = np.asarray(labels)
        self.groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        self.groups = [g for g in self.groups if len(g) >= 2]
        if p < 2 or k < 2:
            raise InvalidInput(f"P x K = {p} x {k}: both must be >= 2", hint="set train.p and train.k to 2 or more")
        if len(self.groups) < p:
            raise InvalidInput(f"P={p} identities per batch but only {len(self.groups)} identities have 2+ images",
                               hint="lower train.p or add identities")
        short = sum(len(g) < k for g in self.groups)
        if short and rank == 0:
            log.warning("train.k = %d but %d of %d identities have fewer images: their faces repeat within a batch "
                        "(a repeat is a zero-distance positive: it teaches nothing); lower train.k or add images",
                        k, short, len(self.groups))
        self.n_short = short
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} of {num_replicas} replicas")
        if p % num_replicas:
            raise InvalidInput(f"train.p = {p} identities per batch cannot be split into whole identities over "
                               f"{num_replicas} training processes",
                               hint=f"make train.p a multiple of {num_replicas} (train.devices x train.num_nodes)")
        self.p, self.k, self.steps, self.seed = p, k, steps, seed
        self.rank, self.num_replicas, self.epoch = rank, num_replicas, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        # the key of the single-process stream since the first release (rank 0 of 1), shared by every
        # rank: recorded single-process runs reproduce, and all ranks draw the same global batches
        rng = np.random.default_rng([self.seed, self.epoch, 0, 1])
        share = self.p // self.num_replicas * self.k
        lo = self.rank * share
        for _ in range(self.steps):
            ids = rng.choice(len(self.groups), self.p, replace=False)
            batch = []
            for c in ids:
                g = self.groups[c]
                batch.extend(rng.choice(g, self.k, replace=len(g) < self.k).tolist())
            yield batch[lo : lo + share]
