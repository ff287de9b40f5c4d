"""`harmony train base`: a FaceNet model trained on P x K batches with the triplet loss, or with a
margin-softmax loss (SphereFace / CosFace / ArcFace, ``train.loss``) over a classifier of the
training identities that is trained alongside and dropped at registration."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from harmony.data.datamodule import FaceDataModule, eval_set
from harmony.losses import triplet_loss
from harmony.losses.margins import DEFAULTS, MARGIN_LOSSES, MarginClassifier, MarginParams
from harmony.models.embedder import Embedder
from harmony.models.encode import encode_array, raw_pixels
from harmony.progress import ProgressFn
from harmony.recipe import Recipe, TrainSpec
from harmony.training.distributed import (check_devices, distributed_recipe, drop_handoff, hand_off,
                                          ranks_fail_as_one, take_handoff, trained_by)
from harmony.training.module import EmbeddingModule
from harmony.training.runner import (TrainResult, held_out_metrics, make_trainer, refuse_existing, register, seed_all,
                                     spec_from_recipe)
from harmony.training.runs import Run, finish_run, marked_on_failure, open_run, run_path

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from harmony.registry import Registry

log = logging.getLogger(__name__)

STAGE = "base"


def triplet_objective(module: EmbeddingModule, batch: dict, emb: torch.Tensor) -> torch.Tensor:
    t = module.spec
    return triplet_loss(emb, batch["y"], margin=t.margin, mining=t.mining)


def margin_objective(module: EmbeddingModule, batch: dict, emb: torch.Tensor) -> torch.Tensor:
    """The margin loss over the module's classifier; labels (identity indices) index its rows.
    The step drives SphereFace's lambda annealing (restored with the step on resume)."""
    return module.classifier(emb, batch["y"], module.global_step)


def margin_params(t: TrainSpec) -> MarginParams:
    """The recipe's margin loss with the paper's s and m filled in where the recipe leaves them null."""
    s, m = DEFAULTS[t.loss]
    ml = t.margin_loss
    return MarginParams(t.loss, ml.scale if ml.scale is not None else s, ml.margin if ml.margin is not None else m,
                        ml.easy_margin, ml.lambda_base, ml.lambda_gamma, ml.lambda_power, ml.lambda_min,
                        ml.warmup_steps)


def make_classifier(t: TrainSpec, train_labels, dim: int, seed: int,
                    init: torch.Tensor | None = None) -> MarginClassifier | None:
    """The training-only classifier for a margin ``train.loss`` (None for the triplet loss): one row
    per training identity, the rows the P x K sampler's labels (0..n-1, folder data included) index."""
    if t.loss not in MARGIN_LOSSES:
        return None
    n = int(train_labels.max()) + 1
    clf = MarginClassifier(n, dim, margin_params(t), init=init, seed=seed)
    size = clf.size()
    log.info("%s classifier: %d identities x %d = %d parameters (%.2f MB fp32), training only: not registered",
             t.loss, n, dim, size["parameters"], size["megabytes"])
    return clf


CLASSIFIER_NOTE = ("trained only to shape the embedding and not registered: it grows with the number of "
                   "training identities (at millions of them it outgrows a GPU, why insightface's Partial FC "
                   "samples its rows), while the embedder stays the same size")


def fit_base(recipe: Recipe, run: Run | None = None, progress: ProgressFn | None = None,
             sizes: dict | None = None) -> tuple[Embedder, list]:
    """Train a base model; returns (model, per-epoch history). No registry involved.

    With a ``run`` the trainer checkpoints each epoch into it and continues from its last
    checkpoint when there is one; without, nothing is written to disk. ``sizes``, when given,
    receives the margin classifier's size under ``"classifier"``."""
    seed_all(recipe.seed)
    dm = FaceDataModule(recipe.data, recipe.train, recipe.seed)
    dm.setup("fit")
    model = Embedder(spec_from_recipe(recipe))
    t = recipe.train
    clf = make_classifier(t, dm.train_labels, model.dim, recipe.seed)
    if clf is not None and sizes is not None:
        sizes["classifier"] = clf.size()
    module = EmbeddingModule(model, t, triplet_objective if clf is None else margin_objective,
                             total_steps=t.epochs * t.steps_per_epoch, val_images=dm.val.images,
                             val_labels=dm.val.labels, val_far=min(recipe.eval.fars), classifier=clf)
    stage_dir = run.stage_dir(STAGE) if run is not None else None
    trainer = make_trainer(t, t.epochs, stage_dir, progress, task="training")
    trainer.fit(module, datamodule=dm, ckpt_path=run.last_checkpoint(STAGE) if run is not None else None,
                weights_only=True)  # our own checkpoint, loaded safely all the same
    return model.eval(), module.history


def evaluate_held_out(model: Embedder, recipe: Recipe) -> tuple[dict, dict, str]:
    """VAL@FAR on the test identities, next to the raw-pixel baseline."""
    test = eval_set(recipe.data, "test")
    emb = encode_array(model, test.images, batch_size=recipe.eval.batch_size)
    metrics = held_out_metrics(emb, test.labels, recipe.eval.fars)
    baseline = held_out_metrics(raw_pixels(test.images), test.labels, recipe.eval.fars)
    return metrics, baseline, test.key


def train_base(reg: Registry, recipe: Recipe, name: str, resume: bool | None = None,
               progress: ProgressFn | None = None) -> TrainResult:
    """Train, evaluate on held-out identities, register as a base version.

    ``resume``: None continues an unfinished run of ``name`` if there is one (killed before it
    registered), True requires one, False starts over."""
    check_devices(recipe.train)  # before anything is written
    refuse_existing(reg, name)
    reg.require_writable()  # before hours of training, not at registration
    run = open_run(reg, name, {"kind": "base", "recipe": recipe.to_yaml()}, resume)
    t0 = time.time()
    with marked_on_failure(run):
        if distributed_recipe(recipe.train):
            hand_off(run.path)  # the other ranks start from the settled run folder
        sizes: dict = {}
        with ranks_fail_as_one(recipe.train, run.path):
            model, history = fit_base(recipe, run, progress, sizes)
        drop_handoff(run.path)
        train_s = time.time() - t0
        metrics, baseline, key = evaluate_held_out(model, recipe)
        metrics = metrics | {"train_seconds": round(train_s, 1)}
        clf = sizes.get("classifier")
        meta = {"run_dir": str(run.path), "eval_set": key, "processes": trained_by(history), "loss": recipe.train.loss}
        if clf is not None:
            meta["classifier"] = clf | {"registered": False}
        register(reg, name, model, "base", recipe, metrics, meta=meta,
                 evaluations=[(key, metrics | {f"raw_pixels_{k}": v for k, v in baseline.items()})])
    finish_run(run)
    return TrainResult(name, metrics, baseline, history, time.time() - t0, str(run.path), key, run.resumed,
                       classifier=clf)


def follow_base(root: Path, recipe: Recipe, name: str) -> None:
    """A DDP rank other than 0 of ``harmony train base``: takes rank 0's hand-off (the run folder is
    then settled: resumed or started over), trains its share of every batch from the same
    checkpoint, never opens the registry, and leaves evaluation, the run folder's report and
    registration to rank 0. A rank 0 that refuses the run exits: Lightning then never starts this
    rank, torchrun stops it (SLURM: ``srun --kill-on-bad-exit=1``)."""
    run = Run(run_path(root, name))
    take_handoff(run.path)
    fit_base(recipe, run, None)
