"""`harmony train base`: a FaceNet model trained with the triplet loss on P x K batches."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from harmony.data.datamodule import FaceDataModule, eval_set
from harmony.losses import triplet_loss
from harmony.models.embedder import Embedder
from harmony.models.encode import encode_array, raw_pixels
from harmony.recipe import Recipe
from harmony.training.module import EmbeddingModule
from harmony.training.runner import (TrainResult, held_out_metrics, make_trainer, refuse_existing, register,
                                     run_dir_for, seed_all, spec_from_recipe)

log = logging.getLogger(__name__)


def triplet_objective(module: EmbeddingModule, batch: dict, emb) -> "torch.Tensor":  # noqa: F821
    t = module.spec
    return triplet_loss(emb, batch["y"], margin=t.margin, mining=t.mining)


def fit_base(recipe: Recipe, progress: bool = True, run_dir: Path | None = None,
             checkpoints: bool = True) -> tuple[Embedder, FaceDataModule, list]:
    """Train a base model; returns (model, datamodule, per-epoch history). No registry involved."""
    seed_all(recipe.seed)
    dm = FaceDataModule(recipe.data, recipe.train, recipe.seed)
    dm.setup("fit")
    model = Embedder(spec_from_recipe(recipe))
    t = recipe.train
    module = EmbeddingModule(model, t, triplet_objective, total_steps=t.epochs * t.steps_per_epoch,
                             val_images=dm.val.images, val_labels=dm.val.labels, val_far=min(recipe.eval.fars))
    trainer = make_trainer(t, run_dir or Path("."), t.epochs, progress=progress, checkpoints=checkpoints,
                           logger=run_dir is not None)
    trainer.fit(module, datamodule=dm)
    return model.eval(), dm, module.history


def evaluate_held_out(model: Embedder, recipe: Recipe) -> tuple[dict, dict, str]:
    """VAL@FAR on the test identities, next to the raw-pixel baseline."""
    test = eval_set(recipe.data, "test")
    emb = encode_array(model, test.images, batch_size=recipe.eval.batch_size)
    metrics = held_out_metrics(emb, test.labels, recipe.eval.fars)
    baseline = held_out_metrics(raw_pixels(test.images), test.labels, recipe.eval.fars)
    return metrics, baseline, test.key


def train_base(recipe: Recipe, name: str, registry_root: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Train, evaluate on held-out identities, register as a base version."""
    from harmony.registry import Registry

    reg = Registry.open(registry_root)
    refuse_existing(reg, name)
    run_dir = run_dir_for(reg.root, name)
    (run_dir / "recipe.yaml").write_text(recipe.to_yaml())
    t0 = time.time()
    model, dm, history = fit_base(recipe, progress=progress, run_dir=run_dir)
    train_s = time.time() - t0
    metrics, baseline, key = evaluate_held_out(model, recipe)
    metrics = metrics | {"train_seconds": round(train_s, 1)}
    register(reg, name, model, "base", recipe, metrics, meta={"run_dir": str(run_dir), "eval_set": key})
    reg.record_evaluation(name, key, metrics | {f"raw_pixels_{k}": v for k, v in baseline.items()})
    return TrainResult(name, metrics, baseline, history, time.time() - t0, str(run_dir))
