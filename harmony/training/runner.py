"""Shared run plumbing: seeding, the Lightning Trainer, run folders, held-out evaluation, and
registration of the trained model as an embedding version."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch

from harmony.errors import AlreadyExists, NotFound
from harmony.models.embedder import Embedder, EmbedderSpec
from harmony.recipe import Recipe, TrainSpec

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    name: str
    metrics: dict
    baseline: dict
    history: list = field(default_factory=list)
    wall_s: float = 0.0
    run_dir: str = ""
    extra: dict = field(default_factory=dict)


def refuse_existing(reg, name: str) -> None:
    """Fail before training, not after: version names are immutable."""
    try:
        reg.get_version(name)
    except NotFound:
        return
    raise AlreadyExists(f"version {name!r} already exists in the registry", hint="choose another --name")


def spec_from_recipe(r: Recipe) -> EmbedderSpec:
    return EmbedderSpec(backbone=r.model.backbone, backbone_args=dict(r.model.backbone_args), dim=r.model.dim,
                        image_size=r.data.image_size, dropout=r.model.dropout)


def run_dir_for(root: Path, name: str) -> Path:
    d = Path(root) / "runs" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def make_trainer(t: TrainSpec, run_dir: Path, epochs: int, progress: bool = True, checkpoints: bool = True,
                 logger: bool = True) -> L.Trainer:
    """A Trainer whose devices/strategy/precision come from the recipe (how runs scale out)."""
    from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
    from lightning.pytorch.loggers import CSVLogger

    callbacks = []
    if checkpoints:
        callbacks.append(ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0))
    if progress:
        callbacks.append(RichProgressBar(leave=True))
    return L.Trainer(
        max_epochs=epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        precision=t.precision,
        default_root_dir=str(run_dir),
        logger=CSVLogger(str(run_dir), name="logs") if logger else False,
        callbacks=callbacks,
        enable_checkpointing=checkpoints,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        reload_dataloaders_every_n_epochs=1,
        log_every_n_steps=t.log_every,
        deterministic=False,
    )


def held_out_metrics(emb: np.ndarray, labels: np.ndarray, fars: tuple[float, ...]) -> dict:
    from harmony.metrics import val_at_far

    rs = val_at_far(emb, labels, far=list(fars))
    return {f"val@{r.far:g}": r.val for r in rs} | {f"threshold@{r.far:g}": r.threshold for r in rs}


def register(reg, name: str, model: Embedder, kind: str, recipe: Recipe, metrics: dict, parent: str | None = None,
             meta: dict | None = None):
    """Write the checkpoint to a temp file and hand it to the registry (which copies it into
    place atomically before committing the row), then record the held-out evaluation."""
    with tempfile.TemporaryDirectory(dir=reg.root) as tmp:
        path = Path(tmp) / "model.pt"
        torch.save(model.checkpoint(), path)
        version = reg.add_version(
            name, kind=kind, artifact=path, backbone=model.spec.backbone, dim=model.dim, recipe=recipe.to_yaml(),
            parent=parent, metrics=metrics, meta={"spec": model.spec.as_dict(), **(meta or {})},
            command=" ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        )
    return version


def seed_all(seed: int) -> None:
    L.seed_everything(seed, workers=True, verbose=False)
    torch.manual_seed(seed)
