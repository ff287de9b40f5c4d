"""`harmony train harmonic`: a v2 embedding directly comparable with a frozen v1.

v2 starts from ``--init`` (an independently trained, usually stronger model) with a fresh
embedding layer. Stage 1 trains only that layer (on cached backbone features, so it is cheap);
stage 2 optionally fine-tunes the whole network at a lower rate. Both use the harmonic triplet
loss over the union of v1 and v2 embeddings of each batch, plus the pull onto v1's identity
prototypes (``harmonic.prototype_weight``; 0 is the paper's loss), or BCT's influence loss with
``--method bct``. v1 is frozen and training images are not augmented, so v1's embeddings of the
training set are computed once and cached.

With a margin ``train.loss`` (sphereface/cosface/arcface) v2 also trains with that loss
(``harmonic.margin_weight``) over a classifier of the training identities whose rows start at v1's
identity prototypes (the space v2 must stay in); the harmonic term is added as usual, so a
triplet-trained v1 can be upgraded to an ArcFace-trained v2 that stays comparable with it. The
classifier is shared by both stages, checkpointed with them, and not registered.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from harmony.data.datamodule import FaceDataModule, eval_set
from harmony.data.datasets import ArrayFaces
from harmony.data.synthetic import render
from harmony.errors import Incompatible, InvalidInput
from harmony.losses import bct_influence_loss, harmonic_triplet_loss, triplet_loss
from harmony.losses.harmonic import centre_offset, prototype_pull, relative_order_loss
from harmony.losses.margins import MARGIN_LOSSES
from harmony.models.embedder import Embedder
from harmony.models.encode import encode_array
from harmony.progress import ProgressFn
from harmony.recipe import Recipe
from harmony.registry.store import CompatRecord
from harmony.training.base import make_classifier, margin_objective
from harmony.training.distributed import (check_devices, distributed_recipe, drop_handoff, hand_off,
                                          ranks_fail_as_one, take_handoff, trained_by)
from harmony.training.module import EmbeddingModule, Objective
from harmony.training.runner import TrainResult, make_trainer, refuse_existing, register, seed_all, spec_from_recipe
from harmony.training.runs import Run, finish_run, marked_on_failure, open_run, run_path

if TYPE_CHECKING:
    from pathlib import Path

    from harmony.metrics import CompatReport, FlipReport, IdentificationReport
    from harmony.registry import Registry
    from harmony.registry.external import Encoder

log = logging.getLogger(__name__)


def dataset_images(ds, batch: int = 1024):
    """Yield the training images in order as (n, H, W, 3) uint8 chunks (in memory or from disk)."""
    if isinstance(ds, ArrayFaces):
        for a in range(0, len(ds), batch):
            yield ds.images[a : a + batch]
        return
    for a in range(0, len(ds), batch):
        items = [ds[i] for i in range(a, min(a + batch, len(ds)))]
        yield torch.stack([it["x"] for it in items]).permute(0, 2, 3, 1).numpy()


def v1_targets(old_encoder, dm: FaceDataModule, recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor]:
    """v1 embeddings of every training image (N, d) and v1 prototypes per identity (n_ids, d).

    A prototype is the L2-normalised mean v1 embedding of an identity. For synthetic data it
    averages ``prototype_renders`` images (rendering extra ones beyond the training images)."""
    t0 = time.time()
    old = np.concatenate([old_encoder.encode(x) for x in dataset_images(dm.train_set)])
    labels = dm.train_labels
    n_ids = int(labels.max()) + 1
    sums = np.zeros((n_ids, old.shape[1]), np.float64)
    np.add.at(sums, labels, old)
    counts = np.bincount(labels, minlength=n_ids)
    extra = recipe.harmonic.prototype_renders - recipe.data.per_identity
    if recipe.data.source == "synthetic" and extra > 0:
        ids = np.repeat(np.arange(n_ids), extra)
        ims = np.tile(np.arange(recipe.data.per_identity, recipe.data.per_identity + extra), n_ids)
        from harmony.data.datamodule import synth_config

        for a in range(0, len(ids), 4096):
            e = old_encoder.encode(render(ids[a : a + 4096], ims[a : a + 4096], "train", synth_config(recipe.data)))
            np.add.at(sums, ids[a : a + 4096], e)
        counts = counts + extra
    protos = sums / np.maximum(counts, 1)[:, None]
    protos /= np.linalg.norm(protos, axis=1, keepdims=True) + 1e-12
    log.info("v1 embeddings of %d training images cached (v1 is frozen and training images are not augmented), "
             "%d prototypes, %.1f s", len(old), n_ids, time.time() - t0)
    return torch.from_numpy(old), torch.from_numpy(protos.astype(np.float32))


def backbone_features(model: Embedder, ds, batch: int = 512, stages: int | None = None) -> torch.Tensor | tuple:
    """Frozen-body features of every training image: the whole body's for the head-only stage,
    the first ``stages`` stages' for a partly frozen one. Feature maps are stored as float16 (they
    are large); a v1-branched body's cache is a pair, v1's feature vectors kept in float32."""
    model.eval()
    out = []
    with torch.inference_mode():
        for x in dataset_images(ds, batch):
            x = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)
            f = model.features(x) if stages is None else model.lower_features(x, stages)
            out.append(tuple(_stored(t) for t in f) if isinstance(f, tuple) else _stored(f))
    if isinstance(out[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*out))
    return torch.cat(out)


def _stored(f: torch.Tensor) -> torch.Tensor:
    return f.half() if f.dim() > 2 else f.float()


def branch_v1(old: Embedder, new: Embedder | None, recipe: Recipe) -> Embedder:
    """v2 = [v1's body, frozen ; the new body] -> a head that starts as v1's (``harmonic.v1_branch``).

    The new body is the init model's (its weights kept) or, without one, a fresh body of the
    recipe's ``model``. Both read the same normalised pixels, so v1's input size and normalisation
    are the v2's; a new body trained on others is refused rather than silently fed the wrong ones."""
    from harmony.models.embedder import EmbedderSpec

    new_spec = new.spec if new is not None else spec_from_recipe(recipe)
    if (new_spec.image_size, tuple(new_spec.mean), tuple(new_spec.std)) != (old.spec.image_size, tuple(old.spec.mean),
                                                                            tuple(old.spec.std)):
        raise InvalidInput(f"harmonic.v1_branch feeds one image to both bodies, but v1 takes {old.spec.image_size} px "
                           f"(mean {list(old.spec.mean)}, std {list(old.spec.std)}) and the new body "
                           f"{new_spec.image_size} px (mean {list(new_spec.mean)}, std {list(new_spec.std)})",
                           hint="use an --init (or recipe model) with v1's image size and normalisation, or set "
                                "harmonic.v1_branch: false")
    part = lambda s: {"backbone": s.backbone, "backbone_args": dict(s.backbone_args)}  # noqa: E731
    spec = EmbedderSpec(backbone="branched", backbone_args={"old": part(old.spec), "new": part(new_spec)}, dim=old.dim,
                        image_size=old.spec.image_size, mean=tuple(old.spec.mean), std=tuple(old.spec.std),
                        dropout=new_spec.dropout)
    torch.manual_seed(recipe.seed)
    model = Embedder(spec)
    model.body.old.load_state_dict(old.body.state_dict())
    if new is not None:
        model.body.new.load_state_dict(new.body.state_dict())
    d_old = old.head.in_features
    with torch.no_grad():  # v2 starts exactly as v1; the new body's columns start at zero
        model.head.weight.zero_()
        model.head.weight[:, :d_old] = old.head.weight
        model.head.bias.copy_(old.head.bias)
    return model.eval()


def make_objective(recipe: Recipe, old_train: torch.Tensor, protos: torch.Tensor):
    """The harmonic (or BCT) objective; with a margin ``train.loss`` the module's classifier adds
    ``harmonic.margin_weight`` x that loss on the v2 embeddings (BCT: in place of its triplet term)."""
    h, t = recipe.harmonic, recipe.train
    margin = t.loss in MARGIN_LOSSES

    def own(module: EmbeddingModule, batch: dict, new: torch.Tensor) -> torch.Tensor:
        return h.margin_weight * margin_objective(module, batch, new) if margin else new.sum() * 0.0

    def harmonic(module: EmbeddingModule, batch: dict, new: torch.Tensor) -> torch.Tensor:
        idx, y = batch["idx"].cpu(), batch["y"]
        old = old_train[idx].to(new.device)
        p = protos[y.cpu()].to(new.device) if h.prototype_weight > 0 else None
        if h.loss == "ract":
            loss = relative_order_loss(new, old, y, h.ract_tau)
            loss = loss + h.prototype_weight * prototype_pull(new, p) if p is not None else loss
        else:
            loss = harmonic_triplet_loss(new, old, y, t.margin, t.mining, h.anchors, p, h.prototype_weight,
                                         h.positives, h.negatives)
        if h.centre_weight > 0:
            loss = loss + h.centre_weight * centre_offset(new, old, y)
        return loss + own(module, batch, new) if margin else loss

    def bct(module: EmbeddingModule, batch: dict, new: torch.Tensor) -> torch.Tensor:
        y = batch["y"]
        first = own(module, batch, new) if margin else triplet_loss(new, y, t.margin, t.mining)
        return first + h.bct_weight * bct_influence_loss(new, y, protos.to(new.device), h.bct_scale)

    return harmonic if h.method == "harmonic" else bct


def _stage(model: Embedder, recipe: Recipe, objective: Objective, steps: int, lr: float, trainable: str,
           dm: FaceDataModule, run: Run | None, progress: ProgressFn | None,
           feature_cache: torch.Tensor | tuple | None = None, frozen_stages: int = 0,
           classifier: torch.nn.Module | None = None) -> list:
    """One stage (``head``: embedding layer only; ``all``: the whole net), checkpointed in
    ``<run>/<trainable>/``. Resuming a stage that already finished restores its final weights,
    history and RNG states and trains nothing, so the next stage starts as it would have."""
    t = recipe.train
    spe = min(steps, t.steps_per_epoch)
    epochs = math.ceil(steps / spe)
    t = replace(t, steps_per_epoch=spe, epochs=epochs)
    dm.train_spec = t
    trainable_before = [p.requires_grad for p in model.parameters()]  # a v1 branch stays frozen
    module = EmbeddingModule(model, t, objective, total_steps=epochs * spe, lr=lr, trainable=trainable,
                             val_images=dm.val.images, val_labels=dm.val.labels, val_far=min(recipe.eval.fars),
                             feature_cache=feature_cache, frozen_stages=frozen_stages, classifier=classifier)
    stage_dir = run.stage_dir(trainable) if run is not None else None
    trainer = make_trainer(t, epochs, stage_dir, progress, task=f"harmonic stage {trainable}")
    trainer.fit(module, datamodule=dm, ckpt_path=run.last_checkpoint(trainable) if run is not None else None,
                weights_only=True)  # our own checkpoint, loaded safely all the same
    for p, was in zip(model.parameters(), trainable_before):  # undo the stage's freezing, nothing more
        p.requires_grad_(was)
    return module.history


def fit_harmonic(recipe: Recipe, old_encoder: Encoder | None, init_model: Embedder | None, run: Run | None = None,
                 progress: ProgressFn | None = None,
                 targets: tuple[torch.Tensor, torch.Tensor] | None = None,
                 sizes: dict | None = None, old_model: Embedder | None = None) -> tuple[Embedder, list]:
    """Train v2 against a frozen v1 encoder; returns (v2 model, history). No registry involved.
    ``sizes``, when given, receives a margin loss's classifier size under ``"classifier"``.

    With a ``run`` each stage checkpoints each epoch and continues from its last checkpoint.
    ``targets``: v1's cached (embeddings, prototypes), for a DDP rank other than 0, which gets them
    from rank 0's hand-off instead of embedding with v1 (``old_encoder`` is then None)."""
    seed_all(recipe.seed)
    h = recipe.harmonic
    dm = FaceDataModule(recipe.data, recipe.train, recipe.seed)
    dm.setup("fit")
    if recipe.train.hflip:
        raise InvalidInput("train.hflip is not supported for harmonic training: v1's training-set embeddings are "
                           "cached, which needs un-augmented images", hint="set train.hflip: false")
    if targets is None:
        old_train, protos = v1_targets(old_encoder, dm, recipe)
        if run is not None and distributed_recipe(recipe.train):  # what the other ranks cannot read themselves
            hand_off(run.path, {"old_train": old_train, "protos": protos,
                                "init": init_model.checkpoint() if init_model is not None else None,
                                "old": old_model.checkpoint() if old_model is not None else None})
    else:
        old_train, protos = targets
    dim = old_train.shape[1]
    if h.v1_branch:
        if old_model is None:
            raise InvalidInput("harmonic.v1_branch needs v1's own network to carry as a branch",
                               hint="pass old_model (train_harmonic loads it from the registry)")
        model = branch_v1(old_model, init_model, recipe)
    elif init_model is None:
        model = Embedder(replace(spec_from_recipe(recipe), dim=dim))
    else:
        model = init_model
        if model.dim != dim or h.reinit_head:
            model.spec = replace(model.spec, dim=dim)
            model.head = torch.nn.Linear(model.head.in_features, dim)
            model.reset_head(recipe.seed)
    # a random (new) body has nothing to freeze: both stages' steps train the whole net
    head_steps, full_steps = (h.head_steps, h.full_steps) if init_model is not None else (
        0, h.head_steps + h.full_steps)
    objective = make_objective(recipe, old_train, protos)
    clf = make_classifier(recipe.train, dm.train_labels, dim, recipe.seed, init=protos)
    if clf is not None and sizes is not None:
        sizes["classifier"] = clf.size()
    history = []
    if head_steps:
        feats = backbone_features(model, dm.train_set)
        history += _stage(model, recipe, objective, head_steps, h.head_lr, "head", dm, run, progress, feats,
                          classifier=clf)
    if full_steps:
        n = h.frozen_stages if init_model is not None else 0
        if n and n >= model.n_stages():
            raise InvalidInput(f"harmonic.frozen_stages is {n} but the {model.spec.backbone} body has "
                               f"{model.n_stages()} stage(s) that can be frozen",
                               hint=f"use 0..{max(model.n_stages() - 1, 0)} (0 trains the whole net in stage 2)")
        lower = backbone_features(model, dm.train_set, stages=n) if n else None
        history += _stage(model, recipe, objective, full_steps, h.full_lr, "all", dm, run, progress, lower, n,
                          classifier=clf)
    return model.eval(), history


@dataclass(frozen=True)
class HeldOutReports:
    """What a harmonic run measures on the held-out test identities (``eval_set`` is their key):
    v1 vs v2 (``report``), v1 vs the independent init model (``baseline``), and on the
    identification split (v1 gallery = first image per identity) top-k and the negative flips."""

    report: CompatReport
    baseline: CompatReport | None
    identification: IdentificationReport
    flips: FlipReport
    eval_set: str


def compat_reports(old_encoder, new_model: Embedder, init_model: Embedder | None, recipe: Recipe,
                   old_name: str, new_name: str, init_name: str | None) -> HeldOutReports:
    """Held-out 2x2 tables: v1 vs v2, and v1 vs the independent init model (the baseline); the
    identification split and the negative flips of v2 against v1 on the same embeddings."""
    from harmony.metrics import compatibility_report, flip_report, identification_report

    test = eval_set(recipe.data, "test")
    old_emb = old_encoder.encode(test.images)
    new_emb = encode_array(new_model, test.images, recipe.eval.batch_size)
    rep = compatibility_report(old_emb, new_emb, test.labels, fars=recipe.eval.fars, old_name=old_name, new_name=new_name)
    ident = identification_report(old_emb, new_emb, test.labels, 1, (1, 5), old_name=old_name, new_name=new_name)
    flips = flip_report(old_emb, new_emb, test.labels, 1, old_name=old_name, new_name=new_name)
    base = None
    if init_model is not None:
        init_emb = encode_array(init_model, test.images, recipe.eval.batch_size)
        base = compatibility_report(old_emb, init_emb, test.labels, fars=recipe.eval.fars, old_name=old_name,
                                    new_name=init_name)
    return HeldOutReports(rep, base, ident, flips, test.key)


def ancestor_reports(reg: Registry, old_v, new_model: Embedder, recipe: Recipe, new_name: str) -> list[CompatReport]:
    """v2 against each older ancestor of v1 (v1's parent, grandparent, ...), measured on the same
    held-out set: compatibility is not transitive, so a chain v1 <- v2 <- v3 records v3 vs v1 as
    measured, never inferred from v3 vs v2 and v2 vs v1. Ancestors of another dimension are skipped."""
    from harmony.metrics import compatibility_report
    from harmony.models.loading import load_encoder
    from harmony.models.pipeline import CropEncoder, input_pipeline

    test = eval_set(recipe.data, "test")
    new_emb = None
    out = []
    for anc in reg.lineage(old_v.name)[1:]:
        if anc.dim != new_model.dim:
            log.info("%s is %d-D and %s %d-D: not comparable, skipped", anc.name, anc.dim, new_name, new_model.dim)
            continue
        if new_emb is None:
            new_emb = encode_array(new_model, test.images, recipe.eval.batch_size)
        anc_emb = CropEncoder(load_encoder(reg, anc.name), input_pipeline(anc)).encode(test.images)
        out.append(compatibility_report(anc_emb, new_emb, test.labels, fars=recipe.eval.fars, old_name=anc.name,
                                        new_name=new_name))
    return out


def old_network(reg: Registry, old_v, recipe: Recipe) -> Embedder | None:
    """v1's own network when ``harmonic.v1_branch`` carries it inside v2 (None otherwise)."""
    from harmony.models.loading import load_embedder

    if not recipe.harmonic.v1_branch:
        return None
    if old_v.kind == "external":
        raise InvalidInput(f"harmonic.v1_branch carries v1's network inside v2, but {old_v.name!r} is an external "
                           f"model ({(old_v.meta or {}).get('adapter')}) harmony cannot train or export as a branch",
                           hint="set harmonic.v1_branch: false (--set harmonic.v1_branch=false) for an external v1")
    return load_embedder(reg, old_v.name)


def refuse_flips(flips: FlipReport, max_flip_rate: float, run: Run) -> None:
    """Raise when a negative flip rate on the held-out split exceeds ``max_flip_rate`` (nothing is
    registered; the run folder stays, so a re-run resumes its finished stages without training)."""
    over = flips.over(max_flip_rate)
    if over:
        measured = " and ".join(f"{s.rate:.2%} ({s.probe_version} -> {s.gallery_version} gallery, {s.n_flips} of "
                                f"{s.n_queries} held-out queries)" for s in over)
        raise Incompatible(f"negative flip rate {measured} exceeds --max-flip-rate {max_flip_rate:g}: "
                           f"{flips.new_name} was not registered",
                           hint=f"re-run with a higher --max-flip-rate (the run folder {run.path} resumes without "
                                "training again), or retrain with another recipe or seed (--no-resume)")


def train_harmonic(reg: Registry, recipe: Recipe, name: str, from_version: str, init: str | None = None,
                   require_compatible: bool = False, resume: bool | None = None,
                   progress: ProgressFn | None = None, max_flip_rate: float | None = None) -> TrainResult:
    """Train v2 compatible with ``from_version`` (frozen), starting from ``init``, and register it.

    The compatibility rows (v2 vs v1, and the init model vs v1 as the baseline) are recorded
    unless ``require_compatible`` and some FAR fails. With ``max_flip_rate`` a held-out negative
    flip rate (new or cross) above it raises Incompatible and registers nothing. ``resume`` as in
    ``train_base``."""
    from harmony.metrics.flips import check_rate
    from harmony.models.complexity import version_cost
    from harmony.models.loading import load_embedder, load_encoder
    from harmony.models.pipeline import CropEncoder, input_pipeline

    check_devices(recipe.train)  # before anything is written
    if max_flip_rate is not None:
        max_flip_rate = check_rate(max_flip_rate, "--max-flip-rate")
    refuse_existing(reg, name)
    reg.require_writable()  # before hours of training, not at registration
    old_v = reg.get_version(from_version)
    # the frozen v1 sees the training crops through its own recorded pipeline (channel order), so an
    # external v1 (ONNX, TorchScript) embeds them exactly as it embeds a gallery
    old_encoder = CropEncoder(load_encoder(reg, old_v.name), input_pipeline(old_v))
    old_model = old_network(reg, old_v, recipe)  # refused here, before a run folder exists
    init_model = load_embedder(reg, init) if init else None
    init_copy = copy.deepcopy(init_model)  # untouched by training, for the baseline row
    run = open_run(reg, name, {"kind": "harmonic", "recipe": recipe.to_yaml(), "from": old_v.name, "init": init},
                   resume)
    t0 = time.time()
    with marked_on_failure(run):
        sizes: dict = {}
        with ranks_fail_as_one(recipe.train, run.path):
            model, history = fit_harmonic(recipe, old_encoder, init_model, run, progress, sizes=sizes,
                                          old_model=old_model)
        drop_handoff(run.path)
        train_s = time.time() - t0
        held = compat_reports(old_encoder, model, init_copy, recipe, old_v.name, name, init)
        rep, base, key = held.report, held.baseline, held.eval_set
        if max_flip_rate is not None:
            refuse_flips(held.flips, max_flip_rate, run)
        verdict = {r.far: r.compatible for r in rep.rows}
        metrics = {f"val@{r.far:g}": r.new_new.val for r in rep.rows} | {"train_seconds": round(train_s, 1)}
        rows = [CompatRecord(old_v.name, key, r.far, r.cells(), r.compatible) for r in rep.rows]
        version = register(reg, name, model, "harmonic", recipe, metrics, parent=old_v.name,
                 meta={"init": init, "method": recipe.harmonic.method, "run_dir": str(run.path), "eval_set": key,
                       "processes": trained_by(history), "loss": recipe.train.loss}
                 | ({"classifier": sizes["classifier"] | {"registered": False}} if "classifier" in sizes else {}),
                 evaluations=[(key, rep.as_dict() | {"identification": held.identification.as_dict(),
                                                     "flips": held.flips.as_dict()}, old_v.name)],
                 compatibility=rows if not require_compatible or all(verdict.values()) else ())
    if base is not None:
        for r in base.rows:  # measured, so the migrator can refuse a mixed search for the init model too
            reg.record_compatibility(init, old_v.name, key, r.far, r.cells(), r.compatible)
    chain = ancestor_reports(reg, old_v, model, recipe, name)
    for anc in chain:
        reg.record_evaluation(name, key, anc.as_dict(), against=anc.old_name)
        for r in anc.rows:
            reg.record_compatibility(name, anc.old_name, key, r.far, r.cells(), r.compatible)
    finish_run(run)
    return TrainResult(name, metrics, {}, history, time.time() - t0, str(run.path), key, run.resumed, report=rep,
                       baselines=base, compatible=verdict, identification=held.identification, flips=held.flips,
                       ancestors=tuple(chain), classifier=sizes.get("classifier"),
                       cost={"old": version_cost(old_v.meta or {}), "new": version.meta["cost"]})


def follow_harmonic(root: Path, recipe: Recipe, name: str) -> None:
    """A DDP rank other than 0 of ``harmony train harmonic``: v1's cached embeddings and prototypes
    and the init model's weights come from rank 0's hand-off (this rank never opens the registry),
    then it trains its share of every batch through both stages, from the same checkpoints."""
    from harmony.models.embedder import embedder_from_checkpoint

    run = Run(run_path(root, name))
    got = take_handoff(run.path)
    init = embedder_from_checkpoint(got["init"]) if got.get("init") is not None else None
    old = embedder_from_checkpoint(got["old"]) if got.get("old") is not None else None
    fit_harmonic(recipe, None, init, run, None, targets=(got["old_train"], got["protos"]), old_model=old)
