"""The DataModule: seeded P x K loaders, and workers that do not hang after OpenMP work."""

from __future__ import annotations

import numpy as np
import torch

from harmony.data.datamodule import FaceDataModule
from harmony.recipe import recipe_from_dict
from tests.conftest import MICRO


def _dm(workers: int) -> FaceDataModule:
    raw = {**MICRO, "data": {**MICRO["data"], "num_workers": workers}}
    r = recipe_from_dict(raw)
    dm = FaceDataModule(r.data, r.train, seed=3)
    dm.setup("fit")
    return dm


def test_batches_are_p_by_k_and_seeded():
    a = [b for b in _dm(0).train_dataloader()]
    b = [b for b in _dm(0).train_dataloader()]
    assert len(a) == MICRO["train"]["steps_per_epoch"]
    for x, y in zip(a, b):
        assert x["x"].shape == (16, 3, 32, 32) and x["x"].dtype == torch.uint8
        assert torch.equal(x["y"], y["y"]) and torch.equal(x["idx"], y["idx"])
        counts = torch.bincount(x["y"])
        assert sorted(counts[counts > 0].tolist()) == [4, 4, 4, 4]


def test_workers_after_openmp_work_in_the_parent():
    """DESIGN section 7: a forked worker that runs OpenMP after the parent did can spin forever;
    the loader uses forkserver workers with one thread each."""
    import faiss

    torch.ones(512, 512) @ torch.ones(512, 512)  # OpenMP pools active in the parent
    idx = faiss.IndexFlatIP(8)
    idx.add(np.random.default_rng(0).standard_normal((1000, 8)).astype(np.float32))
    idx.search(np.ones((10, 8), np.float32), 5)
    serial = [b["idx"] for b in _dm(0).train_dataloader()]
    parallel = [b["idx"] for b in _dm(1).train_dataloader()]
    assert all(torch.equal(s, p) for s, p in zip(serial, parallel))
