"""The migration report: how the gallery verifies and identifies before, during and after.

Over the gallery's labelled items (or ``--eval-data DIR``), embedded by both versions:
VAL@FAR before (source,source), mixed (target->source, the cross figure queries rely on while
the backfill runs) and after (target,target) with the share of the gain the mixed search
recovers, plus top-1/top-5 identification with a gallery of one source-version vector per
identity and the other items as target-version probes, and on that split the negative flips:
probes the source gets right at top-1 that become wrong after the swap (target on a target
gallery) or in the mixed search (target on the source gallery), listed by item id (by path under
``--eval-data``). The migrator's ``--max-flip-rate`` reads the first of those rates. Gallery
vectors are the ones the indexes hold (flat exact, sq8 decoded and renormalised); IVF codecs
cannot return stored vectors, so their items are re-embedded from their sources. Pairwise VAL
is quadratic, so large galleries are measured on a seeded sample (``max_items``), said in the report.
The result is a plain dict (stored in the registry's migration row); harmony.cli.render_migration
draws it.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from harmony.errors import InvalidInput
from harmony.metrics.fars import DEFAULT_FARS, check_far

if TYPE_CHECKING:
    from harmony.gallery.store import GalleryStore
    from harmony.registry import Registry

log = logging.getLogger(__name__)

MAX_ITEMS = 4000
EmbedBy = Callable[[str, list[str]], tuple[np.ndarray, np.ndarray]]  # (version, sources) -> (vectors, ok)


def report_fars(far: float) -> list[float]:
    return sorted({*DEFAULT_FARS, check_far(far)}, reverse=True)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


Pairs = tuple[np.ndarray, np.ndarray, np.ndarray, list[str], dict[str, Any]]  # old, new, labels, ids, about


def gallery_pairs(store: GalleryStore, source: str, target: str, embed: EmbedBy | None, max_items: int = MAX_ITEMS,
                  seed: int = 0, all_items: bool = False) -> Pairs:
    """``(old (n, d), new (n, d), labels (n,), item ids, about)`` for items holding a target vector.

    ``all_items``: every item instead, in seq order (the backfill curve, before or during a
    backfill); items without a stored target vector are embedded with ``target`` from their sources."""
    table = store.items()
    rows = np.arange(len(table)) if all_items else np.flatnonzero(table.versions == target)
    total = int(rows.size)
    if total > max_items:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_items, replace=False))
    if all_items:  # in change order, as a backfill plans them (order.py)
        rows = rows[np.argsort(table.seqs[rows], kind="stable")]
    ids = [str(s) for s in table.item_ids[rows]]
    about = {"data": "gallery items", "candidates": total, "sampled": total > max_items}
    try:
        old = store.vectors(ids, source)
        held = table.versions[rows] == target
        new = np.empty_like(old)
        if held.any():
            new[held] = store.vectors([i for i, h in zip(ids, held) if h], target)
        about["vectors"] = "as stored" if store.codec == "flat" else f"as stored ({store.codec}, decoded)"
        n_conv = int(table.converted[rows].sum())
        if n_conv:  # `migrate --via` left them: their sources could not be read again
            about["vectors"] += f"; {n_conv} {target} vector(s) converted through a transform, not embedded"
            about["converted"] = n_conv
        if not held.all():
            if embed is None:
                raise InvalidInput(f"{int((~held).sum())} item(s) hold no {target} vector yet",
                                   hint="pass an embedder for the target version")
            new_v, ok = embed(target, [str(s) for s in table.sources[rows[~held]]])
            keep = held.copy()
            keep[np.flatnonzero(~held)[ok]] = True
            new[np.flatnonzero(~held)[ok]] = new_v
            old, new, rows = old[keep], new[keep], rows[keep]
            ids = [i for i, k in zip(ids, keep) if k]
            about["vectors"] += f"; {target} embedded from sources for {int(ok.sum())} item(s)"
            about["unreadable"] = int((~ok).sum())
    except InvalidInput:  # an IVF codec keeps no id -> vector map: read the sources again
        if embed is None or store.codec == "flat" or store.codec == "sq8":
            raise
        sources = [str(s) for s in table.sources[rows]]
        old_v, ok_old = embed(source, sources)
        new_v, ok_new = embed(target, sources)
        both = ok_old & ok_new
        old = old_v[both[ok_old]]
        new = new_v[both[ok_new]]
        ids = [i for i, ok in zip(ids, both) if ok]
        rows = rows[both]
        about["vectors"] = f"re-embedded from sources ({store.codec} keeps no stored vectors)"
        about["unreadable"] = int((~both).sum())
    return _unit(old), _unit(new), np.asarray(table.labels[rows]).astype(str), ids, about


def folder_pairs(reg: Registry, source: str, target: str, data: Path | str) -> Pairs:
    """Both versions' embeddings of an image folder (through the evaluation embedding cache);
    the ids are the image paths relative to the folder."""
    from harmony.data.folder import scan_folder
    from harmony.data.sources import FileSource
    from harmony.evaluation.cache import embed_cached

    idx = scan_folder(data, min_images=1)
    src = FileSource.of(idx.paths)
    old = embed_cached(reg, source, src)
    new = embed_cached(reg, target, src)
    ok = old.ok & new.ok
    root = Path(data).absolute()
    ids = [os.path.relpath(Path(p).absolute(), root) for p, keep in zip(idx.paths, ok) if keep]
    names = np.asarray(idx.identities, dtype=object)[idx.labels[ok]].astype(str)  # flips name identities
    return old.rows(ok), new.rows(ok), names, ids, {"data": str(root), "candidates": len(idx),
                                                    "sampled": False, "vectors": "embedded (evaluation cache)",
                                                    "unreadable": int((~ok).sum())}


def build_report(old: np.ndarray, new: np.ndarray, labels: np.ndarray, source: str, target: str,
                 fars: Sequence[float], about: dict[str, Any], ids: Sequence[str] | None = None) -> dict[str, Any]:
    """The report dict over one image set embedded by both versions (rows aligned; ``ids`` name
    the rows in the flip lists, default their indices)."""
    from harmony.metrics import (
        MetricsWarning,
        compatibility_report,
        flip_report,
        identification_report,
    )

    out: dict[str, Any] = {"source": source, "target": target, **about, "n_items": int(len(labels)),
                           "n_identities": int(np.unique(labels).size), "fars": [float(f) for f in fars]}
    try:
        with warnings.catch_warnings():  # zero-false-accept figures are flagged in the report itself
            warnings.simplefilter("ignore", MetricsWarning)
            rep = compatibility_report(old, new, labels, fars, old_name=source, new_name=target)
        out["verification"] = rep.verification()
    except InvalidInput as e:
        out["verification_error"] = e.message
    try:
        out["identification"] = identification_report(old, new, labels, 1, (1, 5), old_name=source,
                                                       new_name=target).as_dict()
    except InvalidInput as e:
        out["identification_error"] = e.message
    try:
        out["flips"] = flip_report(old, new, labels, 1, ids, old_name=source, new_name=target).as_dict()
    except InvalidInput as e:
        out["flips_error"] = e.message
    return out


def migration_report(store: GalleryStore, source: str, target: str, far: float, *, reg: Registry | None = None,
                     eval_data: Path | str | None = None, embed: EmbedBy | None = None,
                     max_items: int = MAX_ITEMS, seed: int = 0) -> dict[str, Any]:
    """The report of a migration of ``store`` from ``source`` to ``target`` (see the module doc)."""
    if eval_data is not None:
        old, new, labels, ids, about = folder_pairs(reg, source, target, eval_data)
    else:
        old, new, labels, ids, about = gallery_pairs(store, source, target, embed, max_items, seed)
    if len(labels) < 2:
        return {"source": source, "target": target, **about, "n_items": int(len(labels)),
                "verification_error": f"{len(labels)} item(s) with vectors of both versions: nothing to compare"}
    return build_report(old, new, labels, source, target, report_fars(far), about, ids)
