"""Shared run plumbing: seeding, the Lightning Trainer, held-out evaluation, and registration of
the trained model as an embedding version (run folders: ``runs.py``)."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import lightning as L
import numpy as np
import torch

from harmony.errors import AlreadyExists, NotFound
from harmony.models.embedder import Embedder, EmbedderSpec
from harmony.progress import ProgressFn
from harmony.recipe import Recipe, TrainSpec
from harmony.registry.store import CompatRecord

if TYPE_CHECKING:
    from harmony.metrics import CompatReport, FlipReport, IdentificationReport
    from harmony.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """A registered training run: held-out metrics (and the raw-pixel baseline for base runs),
    per-epoch history, the run folder, the held-out set's key, whether it resumed a killed run;
    for harmonic runs the compatibility reports against v1 (``report``; ``baselines``: the
    independent init model), the verdict per FAR, the identification split (``identification``)
    and the negative flips against v1 (``flips``); for margin losses the size of the classifier
    that trained with the model and was not registered (``classifier``); for harmonic runs
    what a face costs to embed under v1 and v2 (``cost``, models/complexity.py)."""

    name: str
    metrics: dict
    baseline: dict
    history: list = field(default_factory=list)
    wall_s: float = 0.0
    run_dir: str = ""
    eval_set: str = ""
    resumed: bool = False
    report: CompatReport | None = None
    baselines: CompatReport | None = None
    compatible: dict = field(default_factory=dict)
    identification: IdentificationReport | None = None
    flips: FlipReport | None = None
    ancestors: tuple[CompatReport, ...] = ()  # v2 against v1's own ancestors (chains), measured
    classifier: dict | None = None  # a margin loss's training-only classifier: identities, dim, parameters, MB
    cost: dict | None = None  # harmonic: {"old": v1's, "new": v2's} parameters and multiply-adds per face (None: external)


def refuse_existing(reg: Registry, name: str) -> None:
    """Fail before training, not after: version names are immutable."""
    try:
        reg.get_version(name)
    except NotFound:
        return
    raise AlreadyExists(f"version {name!r} already exists in the registry", hint="choose another --name")


def spec_from_recipe(r: Recipe) -> EmbedderSpec:
    return EmbedderSpec(backbone=r.model.backbone, backbone_args=dict(r.model.backbone_args), dim=r.model.dim,
                        image_size=r.data.image_size, dropout=r.model.dropout)


def make_trainer(t: TrainSpec, epochs: int, stage_dir: Path | None = None, progress: ProgressFn | None = None,
                 task: str = "training", total_steps: int | None = None) -> L.Trainer:
    """A Trainer whose devices/strategy/precision come from the recipe (how runs scale out).

    With a ``stage_dir`` it writes ``last.ckpt`` each epoch and CSV logs there (rank 0 only);
    without one it writes nothing anywhere (no ``./checkpoints``, no ``./lightning_logs``). Under
    DDP the P x K sampler splits each global batch over the ranks itself (no DistributedSampler),
    and BatchNorm normalises over the global batch when ``train.sync_batchnorm`` resolves on."""
    from lightning.pytorch.loggers import CSVLogger

    from harmony.training.callbacks import EpochCheckpoint, StepTicks
    from harmony.training.distributed import (
        GlobalBatchNorm,
        check_devices,
        resolve_sync_batchnorm,
    )
    from harmony.training.precision import resolve_precision

    check_devices(t)

    callbacks: list = []
    if stage_dir is not None:
        callbacks.append(EpochCheckpoint(stage_dir))
    if progress is not None:
        callbacks.append(StepTicks(progress, task, total_steps or epochs * t.steps_per_epoch))
    return L.Trainer(
        max_epochs=epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        precision=resolve_precision(t.precision, t.accelerator),
        plugins=[GlobalBatchNorm()] if resolve_sync_batchnorm(t) else None,
        use_distributed_sampler=False,
        default_root_dir=str(stage_dir) if stage_dir is not None else None,
        logger=CSVLogger(str(stage_dir), name="logs") if stage_dir is not None else False,
        callbacks=callbacks,
        enable_checkpointing=stage_dir is not None,
        enable_progress_bar=False,
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


def register(reg: Registry, name: str, model: Embedder, kind: str, recipe: Recipe, metrics: dict, parent: str | None = None,
             meta: dict | None = None, evaluations: Sequence[tuple[str, Mapping]] = (),
             compatibility: Sequence[CompatRecord] = ()):
    """Write the checkpoint into the registry's scratch space and hand it to the registry, which
    copies it into place and commits the version row together with the held-out ``evaluations``
    and ``compatibility`` rows: a kill leaves either all of it or nothing (and no stray file)."""
    from harmony.models.complexity import embedder_cost
    from harmony.scratch import scratch_dir

    cost = embedder_cost(model.spec)  # parameters and multiply-adds per face, measured on the network
    with scratch_dir(reg.root, f"register-{name}") as tmp:
        path = tmp / "model.pt"
        torch.save(model.checkpoint(), path)
        version = reg.add_version(
            name, kind=kind, artifact=path, backbone=model.spec.backbone, dim=model.dim, recipe=recipe.to_yaml(),
            parent=parent, metrics=metrics, meta={"spec": model.spec.as_dict(), "cost": cost, **(meta or {})},
            command=" ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
            evaluations=evaluations, compatibility=compatibility,
        )
    return version


def seed_all(seed: int) -> None:
    L.seed_everything(seed, workers=True, verbose=False)
    torch.manual_seed(seed)
