"""`harmony migrate gallery --to v2 --via T`: upgrade a gallery by converting its stored vectors.

For galleries whose source photos are gone (FCT without side-information): the stored v1 vectors
are read back from the v1 index (flat: exact; sq8 codecs: decoded 8-bit codes, lossy, said so in
the plan and the report; IVF: through a temporary id map), mapped through the transform h
(``harmony train transform``) and installed as the v2 index in ONE gallery commit under the
gallery's write lock, so a kill -9 leaves either the old generation or the converted one; no
image is opened. Items are marked ``via`` T in the item table: a later normal backfill
(``harmony migrate gallery --to v2`` before the swap) re-embeds them from their sources where
those still exist and replaces the converted vectors; the others keep them. v2 queries then
search the converted index as a normal same-version search (after ``--swap``: direct).

The migration row goes planned -> ready (there is no partial state to resume: re-running the
command after a kill converts what is left, i.e. everything or nothing), its plan says mode
"transform" and ``via``, and its report says the vectors are transformed: VAL(v1,v1) over the
stored vectors against VAL(h(v1),h(v1)) over the converted ones, the table the edge recorded on
held-out identities (VAL(v2 -> h(v1)), gain_recovered) and, with ``--eval-data``, that table
measured on the user's labelled folder.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harmony.errors import Incompatible, InUse, InvalidInput
from harmony.gallery import index as fx
from harmony.gallery.catalog import open_gallery
from harmony.migration.checkpoint import BackfillDir
from harmony.migration.lifecycle import SwapOutcome, swap_gallery
from harmony.migration.plan import MigrationPlan, plan_migration
from harmony.migration.report import MAX_ITEMS, report_fars
from harmony.migration.states import READY, advance, begin, reconcile
from harmony.progress import ProgressFn, tick

if TYPE_CHECKING:
    from harmony.gallery.store import GalleryStore
    from harmony.models.transform import Transform
    from harmony.registry import Registry, TransformEdge
    from harmony.registry.records import Migration

log = logging.getLogger(__name__)

MODE = "transform"
CHUNK = 65536  # vectors per transform pass (and per progress tick)


@dataclass(frozen=True)
class ConversionPlan:
    """A migration plan carried out by a transform instead of a backfill."""

    migration: MigrationPlan  # gallery, source, target, FAR, codec, dim, the in-flight row it resumes
    edge: TransformEdge
    n_convert: int  # items whose newest vector is of the source version: what h converts
    lossy: bool  # the stored vectors are decoded 8-bit codes

    @property
    def gallery(self) -> str:
        return self.migration.gallery

    def steps(self, swap: bool) -> list[str]:
        p, e = self.migration, self.edge
        s, t, g = p.source, p.target, p.gallery
        out = []
        if p.resume is not None:
            out.append(f"resume migration #{p.resume} ({p.resume_state}): {self.n_convert} item(s) left to convert")
        read = f"decoded from the {p.codec} index's 8-bit codes (lossy)" if self.lossy else f"read from the {s} index"
        out.append(f"convert the {self.n_convert} stored {s} vector(s) through transform {e.name} ({e.in_dim}-D -> "
                   f"{e.out_dim}-D), {read}; no image is read")
        out.append(f"install them as the {t} index in one commit (a kill leaves the old generation or the new one)")
        out.append(f"report VAL({s},{s}) against VAL(h({s}),h({s})) over the gallery, and the table {e.name} recorded "
                   f"(VAL({t}->h({s})), gain_recovered)")
        out.append(f"swap the {t} index in atomically" + ("" if swap else f" (pass --swap, or run `harmony migrate swap "
                                                                          f"--gallery {g}` later)"))
        out.append(f"later, before the swap, `harmony migrate gallery --gallery {g} --to {t}` re-embeds the converted "
                   f"items whose sources still exist and replaces their vectors")
        return out

    def as_dict(self, swap: bool = False) -> dict[str, Any]:
        """The migration row's plan: the migration plan's fields with mode "transform" and ``via``."""
        d = self.migration.as_dict(swap=swap)
        d.update(mode=MODE, via=self.edge.name, transform={"name": self.edge.name, "from": self.edge.from_version,
                                                           "to": self.edge.to_version, "sha256": self.edge.sha256},
                 n_convert=self.n_convert, lossy=self.lossy, steps=self.steps(swap))
        d.pop("batch_size", None)
        return d


def plan_conversion(reg: Registry, gallery: str, target: str, via: str) -> ConversionPlan:
    """Check that transform ``via`` converts ``gallery`` to ``target`` and say what it will do;
    changes nothing. One-line errors for an unknown transform or version (NotFound), an edge
    whose ends are not the gallery's version and the target (InvalidInput), dims that do not
    match the gallery (Incompatible), another migration in flight (InUse)."""
    edge = reg.get_transform(via)
    record, store = open_gallery(reg, gallery, use_gpu=False)
    t = reg.resolve(target)
    from harmony.migration.states import active_migration

    mig = active_migration(reg, gallery)
    source = mig.source if mig is not None else store.active_version
    if mig is None and t == source:
        raise InvalidInput(f"gallery {gallery} already serves {t}", hint="pass another --to version")
    if edge.to_version != t:
        raise InvalidInput(f"transform {edge.name} maps {edge.from_version} -> {edge.to_version}, not to {t}",
                           hint=f"pass --to {edge.to_version}, or a transform to {t} (`harmony registry transforms`)")
    if edge.from_version != source:
        raise InvalidInput(f"transform {edge.name} converts {edge.from_version} vectors, but gallery {gallery} holds "
                           f"{source} vectors",
                           hint=f"pass a transform from {source} to {t}, or train one: `harmony train transform "
                                f"--from {source} --to {t} --recipe recipes/transform-tiny.yaml --name "
                                f"{source}-to-{t}`")
    if edge.in_dim != store.dim or edge.out_dim != store.dim:
        raise Incompatible(f"transform {edge.name} maps {edge.in_dim}-D to {edge.out_dim}-D vectors, gallery {gallery} "
                           f"holds {store.dim}-D vectors and a gallery holds one dimension",
                           hint=f"build a new gallery with {t} (`harmony gallery build --version {t}`), or convert "
                                "with a transform between versions of the gallery's dimension")
    if mig is not None and mig.plan.get("via") != edge.name:
        how = f"a conversion via {mig.plan['via']}" if mig.plan.get("via") else "a backfill from the sources"
        raise InUse(f"gallery {gallery} has migration #{mig.id} to {mig.target} in flight ({how}, {mig.state})",
                    hint=f"finish it (`harmony migrate gallery --gallery {gallery} --to {mig.target}`) or cancel it "
                         f"(`harmony migrate rollback --gallery {gallery}`) before converting via {edge.name}")
    plan = plan_migration(reg, gallery, t)  # an already-served target, the target's dim
    cursor = BackfillDir(store.path, t).read_cursor()
    if cursor is not None:
        raise InUse(f"gallery {gallery} has a backfill to {t} in progress ({cursor.n_embedded + cursor.n_failed} "
                    f"item(s) done)", hint=f"finish it (`harmony migrate gallery --gallery {gallery} --to {t}`); its "
                                           "vectors come from the sources, a conversion adds nothing")
    table = store.items()
    return ConversionPlan(plan, edge, int((table.versions == source).sum()), store.codec in fx.LOSSY_CODECS)


# -- the conversion -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ConversionResult:
    target_version: str
    via: str
    n_items: int
    n_converted: int  # by this run
    lossy: bool
    read_s: float  # stored vectors out of the source index
    transform_s: float  # h
    index_s: float  # training and filling the target index
    write_s: float  # the gallery commit (fsync included)
    total_s: float

    @property
    def vectors_per_s(self) -> float:
        return self.n_converted / self.total_s if self.total_s > 0 else 0.0

    def as_counts(self) -> dict[str, Any]:
        """What the migration row keeps (its ``counts``)."""
        return {"items": self.n_items, "converted_this_run": self.n_converted, "via": self.via, "lossy": self.lossy,
                "failed": 0, "vectors_per_s": self.vectors_per_s, "read_s": self.read_s,
                "transform_s": self.transform_s, "index_s": self.index_s, "write_s": self.write_s,
                "total_s": self.total_s}


def convert_gallery(store: GalleryStore, source: str, target: str, model: Transform, via: str,
                    progress: ProgressFn | None = None) -> ConversionResult:
    """Convert every item whose newest vector is ``source``'s into ``target``'s index through h,
    in one commit under the gallery's write lock (no image is read); mark them ``via``."""
    from harmony.models.transform import apply_transform

    t0 = time.perf_counter()
    task = f"convert -> {target}"
    with store.write_lock():  # nobody adds or replaces items between the read and the commit
        table = store.items()
        ids = table.ids[table.versions == source]
        tick(progress, task, 0, int(ids.size))
        x = fx.reconstruct(store.index(source), ids, direct_map=True) if ids.size else np.zeros((0, store.dim),
                                                                                                np.float32)
        t1 = time.perf_counter()
        y = np.empty((ids.size, model.out_dim), np.float32)
        for a in range(0, ids.size, CHUNK):
            y[a:a + CHUNK] = apply_transform(model, x[a:a + CHUNK])
            tick(progress, task, min(a + CHUNK, ids.size), int(ids.size))
        t2 = time.perf_counter()
        index_s = write_s = 0.0
        if ids.size:
            index = store.index_copy(target)
            if index is None:
                index = fx.make_index(store.dim, store.codec, nlist=store.nlist, n=int(ids.size))
            fx.train_if_needed(index, y)
            fx.remove(index, ids)
            fx.add(index, ids, y)
            t3 = time.perf_counter()
            store.install_index(target, index, ids, via=via)  # the commit point: one new generation
            index_s, write_s = t3 - t2, time.perf_counter() - t3
    log.info("converted %d %s vectors of %s to %s via %s", ids.size, source, store.path, target, via)
    return ConversionResult(target, via, len(store.items()), int(ids.size), store.codec in fx.LOSSY_CODECS,
                            t1 - t0, t2 - t1, index_s, write_s, time.perf_counter() - t0)


# -- the report ---------------------------------------------------------------------------------

def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def conversion_report(store: GalleryStore, plan: ConversionPlan, *, reg: Registry | None = None,
                      eval_data: Path | str | None = None, max_items: int = MAX_ITEMS, seed: int = 0
                      ) -> dict[str, Any]:
    """The report of a conversion (a plain dict, stored in the migration row; the CLI draws it
    with harmony.cli.render_migration). Over the converted items (a seeded sample above
    ``max_items``): VAL(v1,v1) of the stored vectors and VAL(h(v1),h(v1)) of the converted ones
    per FAR; the edge's recorded table; with ``eval_data`` the table measured on that folder."""
    from harmony.metrics import MetricsWarning, val_at_far

    p, e = plan.migration, plan.edge
    s, t = p.source, p.target
    fars = report_fars(p.far)
    table = store.items()
    rows = np.flatnonzero((table.versions == t) & (table.via.astype(str) == e.name))
    total = int(rows.size)
    if total > max_items:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_items, replace=False))
    ids = [str(i) for i in table.item_ids[rows]]
    vectors = f"converted from the stored {s} vectors through transform {e.name}; no image was read"
    if plan.lossy:
        vectors += f" ({store.codec}: the stored vectors are decoded 8-bit codes, lossy)"
    out: dict[str, Any] = {"mode": MODE, "via": e.name, "source": s, "target": t, "data": "gallery items",
                           "vectors": vectors, "candidates": total, "sampled": total > max_items,
                           "n_items": len(ids), "n_identities": int(np.unique(table.labels[rows]).size),
                           "fars": [float(f) for f in fars],
                           "transform": {"name": e.name, "dataset": e.metrics.get("test", {}).get("dataset"),
                                         "rows": e.metrics.get("test", {}).get("rows", [])}}
    labels = np.asarray(table.labels[rows]).astype(str)
    if len(ids) >= 2:
        old = _unit(fx.reconstruct(store.index(s), table.ids[rows], direct_map=True))
        new = _unit(fx.reconstruct(store.index(t), table.ids[rows], direct_map=True))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MetricsWarning)
                before = val_at_far(old, labels, fars)
                after = val_at_far(new, labels, fars)
            out["gallery"] = [{"far": b.far, "before": b.val, "converted": a.val,
                               "zero_false_accepts": b.zero_false_accepts} for b, a in zip(before, after)]
        except InvalidInput as err:
            out["gallery_error"] = err.message
    else:
        out["gallery_error"] = f"{len(ids)} converted item(s): nothing to compare"
    if eval_data is not None:
        out["eval"] = eval_table(reg, s, t, e, eval_data, fars)
    return out


def eval_table(reg: Registry, source: str, target: str, edge: TransformEdge, data: Path | str,
               fars: list[float]) -> dict[str, Any]:
    """The edge's table measured on a labelled folder: both versions embed it through their own
    pipelines (the evaluation cache), h maps the source's vectors."""
    from harmony.migration.report import folder_pairs
    from harmony.models.transform import apply_transform, load_transform
    from harmony.training.transform import PairedSet, transform_table

    from harmony.metrics import MetricsWarning

    old, new, labels, _, about = folder_pairs(reg, source, target, data)
    _, model = load_transform(reg, edge.name)
    with warnings.catch_warnings():  # zero-false-accept figures are flagged in the rows themselves
        warnings.simplefilter("ignore", MetricsWarning)
        tab = transform_table(PairedSet(old, new, labels, about["data"]), apply_transform(model, old), fars, source,
                              target)
    return {**tab, "unreadable": about.get("unreadable", 0)}


# -- run ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConversionOutcome:
    plan: ConversionPlan
    migration: Migration  # the registry row afterwards
    conversion: ConversionResult
    report: dict[str, Any]
    swap: SwapOutcome | None
    fixed: tuple[str, ...]


def run_conversion(reg: Registry, plan: ConversionPlan, *, swap: bool = False, allow_missing: bool = False,
                   eval_data: Path | str | None = None, progress: ProgressFn | None = None,
                   max_report_items: int = MAX_ITEMS) -> ConversionOutcome:
    """Carry out (or finish, after a kill) ``plan``: registry row, conversion, report, optional swap."""
    from harmony.models.transform import load_transform

    reg.require_writable()
    fixed = tuple(reconcile(reg, plan.gallery))
    edge, model = load_transform(reg, plan.edge.name)  # sha256 checked, weights_only: before anything changes
    if edge.sha256 != plan.edge.sha256:
        raise InvalidInput(f"transform {edge.name} changed since it was planned", hint="plan the migration again")
    _, store = open_gallery(reg, plan.gallery)
    p = plan.migration
    mig = begin(reg, p.gallery, p.source, p.target, plan.as_dict(swap)) if p.resume is None \
        else reg.get_migration(p.resume)
    result = convert_gallery(store, p.source, p.target, model, edge.name, progress)
    counts = result.as_counts() | {"converted_total": store.items().count_converted().get(edge.name, 0)}
    mig = advance(reg, mig.id, None if mig.state == READY else READY, cursor=int(store.n_vectors(p.target)),
                  counts=counts)
    report = conversion_report(store, plan, reg=reg, eval_data=eval_data, max_items=max_report_items)
    report["conversion"] = counts
    mig = advance(reg, mig.id, report=report)
    swapped = swap_gallery(reg, plan.gallery, allow_missing=allow_missing) if swap else None
    if swapped is not None:
        mig = swapped.migration
    return ConversionOutcome(plan, mig, result, report, swapped, fixed)
