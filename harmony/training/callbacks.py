"""Lightning callbacks: the resumable epoch checkpoint and progress ticks.

``EpochCheckpoint`` writes ``last.ckpt`` atomically at the end of every epoch, after the module's
own epoch-end work (it is a ``Checkpoint``, which Lightning runs last). Lightning's checkpoint
carries the weights, epoch, global step, optimizer, scheduler and loop state; this callback adds
the RNG states (python, numpy, torch, CUDA), so a resumed run draws the same dropout masks and
loader seeds as an uninterrupted one. The P x K sampler needs nothing: it is seeded per
(seed, epoch).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint

from harmony.io import fsync_dir
from harmony.progress import ProgressFn, tick


def rng_states() -> dict[str, Any]:
    """Plain types and tensors only, so the checkpoint loads with ``weights_only=True``."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    states = {"python": random.getstate(), "numpy": (name, keys.tolist(), pos, has_gauss, gauss),
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.asarray(keys, np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class EpochCheckpoint(Checkpoint):
    """``<dirpath>/last.ckpt`` at each epoch end, replaced atomically (a kill -9 mid-write leaves
    the previous one)."""

    def __init__(self, dirpath: Path):
        self.dirpath = Path(dirpath)

    @property
    def state_key(self) -> str:
        return "EpochCheckpoint"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        tmp = self.dirpath / f".last.ckpt.tmp-{os.getpid()}"
        trainer.save_checkpoint(tmp, weights_only=False)  # the full state, to resume; rank 0 writes, all wait
        if trainer.is_global_zero:
            os.replace(tmp, self.dirpath / "last.ckpt")
            fsync_dir(self.dirpath)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        set_rng_states(state_dict["rng"])


class StepTicks(Callback):
    """One ``harmony.progress`` tick per optimiser step (``task`` of ``total`` steps, with the loss)."""

    def __init__(self, progress: ProgressFn, task: str, total: int):
        self.progress, self.task, self.total = progress, task, total

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not trainer.is_global_zero:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        tick(self.progress, self.task, trainer.global_step, self.total, unit="steps", loss=float(loss))
