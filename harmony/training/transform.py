"""`harmony train transform`: learn h mapping v1 embeddings into v2's space (FCT without side-information).

The recipe's labelled data is embedded once by both versions, each through its own input
pipeline (``models.loading.load_encoder`` behind the ``CropEncoder`` harmonic training uses: the
images are face crops, so the colour step runs and alignment does not); h then trains on those
cached vectors with a plain torch loop (an MLP over tensors in memory fits in seconds, Lightning
would add nothing). The loss is FCT's ``||h(v1(x)) - v2(x)||^2`` (``transform.l2_weight``) plus,
optionally, the harmonic triplet loss over the batch's h(v1) and v2 embeddings
(``transform.triplet_weight``). With ``transform.eval_every`` the h scoring best on the VAL
identities is kept; the table the registry records is measured on the TEST identities:
VAL(v1,v1), VAL(v2,v2), VAL(v2 -> h(v1)), VAL(h(v1),h(v1)) and gain_recovered per FAR.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from harmony.errors import InvalidInput
from harmony.models.transform import Transform, TransformNetSpec, apply_transform
from harmony.progress import ProgressFn, tick
from harmony.recipe import DataSpec, TransformRecipe
from harmony.threads import torch_threads

if TYPE_CHECKING:
    from harmony.models.pipeline import CropEncoder
    from harmony.registry import Registry, TransformEdge

log = logging.getLogger(__name__)

TASK = "training transform"


@dataclass(frozen=True, eq=False)
class PairedSet:
    """One labelled image set embedded by both versions, rows aligned (images either version
    could not read are dropped from both): ``old`` (n, d_in), ``new`` (n, d_out), ``labels`` (n,)."""

    old: np.ndarray
    new: np.ndarray
    labels: np.ndarray
    key: str
    n_unusable: int = 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def crop_encoder(reg: Registry, version: str, batch_size: int = 512, device: str | None = None) -> CropEncoder:
    """A registered version (any kind, external included) as an encoder of face crops, through
    its recorded pipeline's per-crop steps (its sha256 is checked when it loads)."""
    from harmony.models.loading import load_encoder
    from harmony.models.pipeline import CropEncoder, input_pipeline

    v = reg.get_version(version)
    return CropEncoder(load_encoder(reg, v.name, batch_size=batch_size, device=device), input_pipeline(v))


def paired_split(old: CropEncoder, new: CropEncoder, data: DataSpec, split: str) -> PairedSet:
    """The ``split`` identities of the recipe's data embedded by both encoders.

    Synthetic: rendered once at ``data.image_size`` (as base and harmonic training saw them),
    each encoder resizes to its own input. Folder: each version reads the crops at its own
    input size; a file either cannot read is left out of both."""
    from harmony.data.splits import folder_split, synthetic_split

    if data.source == "synthetic":
        s = synthetic_split(data, split)
        return PairedSet(old.encode(s.images), new.encode(s.images), s.labels, s.key)
    from harmony.data.images import load_images

    index = folder_split(data, split)
    decoded = [load_images(index.paths, int(enc.image_size)) for enc in (old, new)]
    both = decoded[0].ok & decoded[1].ok
    vecs = [enc.encode(d.images[both[d.ok]]) for enc, d in zip((old, new), decoded)]
    n_bad = int((~both).sum())
    if n_bad:
        log.warning("%d of %d images of %s (%s split) unreadable by either version: left out", n_bad, len(both),
                    index.root, split)
    return PairedSet(vecs[0], vecs[1], index.labels[both], f"folder:{index.root}:{split}:{len(index)}", n_bad)


# -- the fit ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TransformFit:
    model: Transform
    history: list[dict[str, float]] = field(default_factory=list)  # per logged step: loss, val figure
    best_step: int | None = None  # the step whose h was kept (eval_every > 0), else None (the last)
    seconds: float = 0.0


def net_spec(recipe: TransformRecipe, in_dim: int, out_dim: int) -> TransformNetSpec:
    t = recipe.transform
    return TransformNetSpec(in_dim=int(in_dim), out_dim=int(out_dim), hidden=t.hidden or 2 * int(out_dim),
                            blocks=t.blocks, norm=t.norm)


def least_squares(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """W (d_out, d_in) minimising ||x W^T - y||^2 + lam ||W||^2, lam = ``ridge`` x the mean
    diagonal of x^T x (a scale-free nudge that keeps a rank-deficient x solvable): the best linear h."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    gram = x64.T @ x64
    gram += ridge * np.trace(gram) / gram.shape[0] * np.eye(gram.shape[0])
    return np.linalg.solve(gram, x64.T @ y64).T.astype(np.float32)


def _objective(recipe: TransformRecipe):
    from harmony.losses import harmonic_triplet_loss

    t = recipe.transform

    def loss(mapped: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = mapped.new_zeros(())
        if t.l2_weight > 0:
            out = out + t.l2_weight * ((mapped - target) ** 2).sum(1).mean()
        if t.triplet_weight > 0:  # anchors h(v1) (and v2 with anchors: both); candidates both
            out = out + t.triplet_weight * harmonic_triplet_loss(mapped, target, labels, t.margin, t.mining, t.anchors)
        return out

    return loss


def cross_val(model: Transform, val: PairedSet, far: float) -> float:
    """VAL(v2 -> h(v1)) at ``far`` on a held-out set: what selection on val maximises."""
    from harmony.metrics import val_at_far

    return float(val_at_far(val.new, val.labels, [far], gallery=apply_transform(model, val.old))[0].val)


def fit_transform(recipe: TransformRecipe, train: PairedSet, val: PairedSet | None = None,
                  progress: ProgressFn | None = None) -> TransformFit:
    """Train h on cached embeddings; returns the fitted h (eval mode). No registry involved.

    ``val`` (held-out identities) is scored every ``transform.eval_every`` steps when that is
    > 0, and the best h on it is kept; the test identities are never seen here."""
    with torch_threads(1):
        return _fit(recipe, train, val, progress)


def _fit(recipe: TransformRecipe, train: PairedSet, val: PairedSet | None, progress: ProgressFn | None
         ) -> TransformFit:
    from harmony.data.sampler import PKBatchSampler

    t = recipe.transform
    if len(train) < 2:
        raise InvalidInput(f"{len(train)} training image(s) embedded by both versions: nothing to learn from",
                           hint="point the recipe's data at a labelled set both versions can read")
    n_ids = sum(int(c) >= 2 for c in np.unique(train.labels, return_counts=True)[1])
    if n_ids < t.p:
        raise InvalidInput(f"transform.p = {t.p} identities per batch, but only {n_ids} training identities have "
                           "2+ images embedded by both versions", hint="lower transform.p or add identities")
    if t.eval_every and val is None:
        raise InvalidInput("transform.eval_every needs the val identities", hint="pass val=, or set eval_every: 0")
    t0 = time.time()
    torch.manual_seed(recipe.seed)
    model = Transform(net_spec(recipe, train.old.shape[1], train.new.shape[1]))
    if t.init == "lstsq":
        model.set_linear(least_squares(train.old, train.new))
    x = torch.from_numpy(np.ascontiguousarray(train.old, dtype=np.float32))
    y = torch.from_numpy(np.ascontiguousarray(train.new, dtype=np.float32))
    labels = torch.from_numpy(np.asarray(train.labels, dtype=np.int64))
    sampler = PKBatchSampler(train.labels, t.p, t.k, t.steps, recipe.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, (lambda s: 0.5 * (1 + math.cos(math.pi * s / t.steps))) if t.schedule == "cosine" else (lambda s: 1.0))
    objective = _objective(recipe)
    far = min(recipe.eval.fars)
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict] | None = None
    log_every = max(1, t.steps // 20)
    model.train()
    for step, batch in enumerate(sampler, 1):
        idx = torch.as_tensor(batch)
        loss = objective(model(x[idx]), y[idx], labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise InvalidInput(f"transform training diverged at step {step} (loss {value})",
                               hint="lower transform.lr")
        entry: dict[str, float] = {}
        if t.eval_every and (step % t.eval_every == 0 or step == t.steps):
            score = cross_val(model, val, far)
            entry["val_cross"] = score
            if best is None or score > best[0]:
                best = (score, step, copy.deepcopy(model.state_dict()))
            model.train()
        if entry or step % log_every == 0 or step == t.steps:
            history.append({"step": step, "loss": value, **entry})
        tick(progress, TASK, step, t.steps, unit="steps", loss=value)
    best_step = None
    if best is not None:
        model.load_state_dict(best[2])
        best_step = best[1]
    return TransformFit(model.eval(), history, best_step, time.time() - t0)


# -- the measured table -----------------------------------------------------------------------

def transform_table(s: PairedSet, mapped: np.ndarray, fars: Sequence[float], old_name: str = "v1",
                    new_name: str = "v2") -> dict[str, Any]:
    """The edge's table over one held-out set, per FAR: VAL(v1,v1), VAL(v2,v2), VAL(v2 -> h(v1))
    (v2 probes against converted vectors, the search after a ``--via`` upgrade), VAL(h(v1),h(v1))
    (the converted gallery against itself), gain_recovered (DESIGN section 2 with h(v1) in v1's
    place of the gallery) and, for equal dims, VAL(v2 -> v1) without h, the baseline h improves on."""
    from harmony.metrics import compatibility_report, gain_recovered, val_at_far

    rep = compatibility_report(mapped, s.new, s.labels, fars, old_name=f"h({old_name})", new_name=new_name)
    own = val_at_far(s.old, s.labels, list(fars))
    raw = (val_at_far(s.new, s.labels, list(fars), gallery=s.old) if s.old.shape[1] == s.new.shape[1]
           else [None] * len(own))
    rows = []
    for r, o, w in zip(rep.rows, own, raw):
        rows.append({
            "far": r.far, "val_from_from": o.val, "val_to_to": r.new_new.val, "val_to_mapped": r.new_old.val,
            "val_mapped_mapped": r.old_old.val, "val_to_from_without_h": None if w is None else w.val,
            "gain_recovered": gain_recovered(o.val, r.new_old.val, r.new_new.val),
            "threshold_to_mapped": r.new_old.as_dict()["threshold"], "zero_false_accepts": o.zero_false_accepts,
            "n_same_pairs": o.n_same, "n_diff_pairs": o.n_diff})
    return {"dataset": s.key, "from": old_name, "to": new_name, "n_images": len(s),
            "n_identities": int(np.unique(s.labels).size), "rows": rows}


# -- train and register -------------------------------------------------------------------------

@dataclass(frozen=True)
class TransformResult:
    edge: TransformEdge
    table: dict[str, Any]  # on the test identities (what the registry row holds under "test")
    val_table: dict[str, Any]
    history: list[dict[str, float]]
    best_step: int | None
    fit_s: float
    wall_s: float


def train_transform(reg: Registry, recipe: TransformRecipe, name: str, from_version: str, to_version: str, *,
                    device: str | None = None, progress: ProgressFn | None = None) -> TransformResult:
    """Embed the recipe's data with both versions, fit h, measure it on the test identities and
    register the edge ``from_version -> to_version`` (artifact, sha256, the table) as ``name``."""
    from harmony.scratch import scratch_dir

    t0 = time.time()
    a, b = reg.check_transform(name, from_version, to_version)  # unknown versions, a taken name: before any work
    reg.require_writable()
    bs = recipe.eval.batch_size
    old, new = crop_encoder(reg, a.name, bs, device), crop_encoder(reg, b.name, bs, device)
    for enc, v in ((old, a), (new, b)):
        if int(enc.dim) != int(v.dim):
            raise InvalidInput(f"version {v.name} is recorded as {v.dim}-D but embeds in {enc.dim}-D",
                               hint="re-register it with its real dim")
    train = paired_split(old, new, recipe.data, "train")
    val = paired_split(old, new, recipe.data, "val")
    fit = fit_transform(recipe, train, val if recipe.transform.eval_every else None, progress)
    test = paired_split(old, new, recipe.data, "test")
    fars = recipe.eval.fars
    table = transform_table(test, apply_transform(fit.model, test.old), fars, a.name, b.name)
    val_table = transform_table(val, apply_transform(fit.model, val.old), fars, a.name, b.name)
    metrics = {"test": table, "val": val_table, "fit_seconds": round(fit.seconds, 2),
               "n_train": len(train), "n_train_identities": int(np.unique(train.labels).size),
               "best_step": fit.best_step}
    meta = {"spec": fit.model.spec.as_dict(), "train_set": train.key, "val_set": val.key, "eval_set": test.key,
            "loss": {"l2_weight": recipe.transform.l2_weight, "triplet_weight": recipe.transform.triplet_weight},
            "history": fit.history}
    with scratch_dir(reg.root, f"transform-{name}") as tmp:
        path = tmp / "transform.pt"
        torch.save(fit.model.checkpoint(), path)
        edge = reg.add_transform(name, from_version=a.name, to_version=b.name, artifact=path,
                                 in_dim=fit.model.in_dim, out_dim=fit.model.out_dim, recipe=recipe.to_yaml(),
                                 metrics=metrics, meta=meta)
    return TransformResult(edge, table, val_table, fit.history, fit.best_step, fit.seconds, time.time() - t0)
