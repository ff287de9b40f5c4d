"""Searching a gallery: direct with its own version, cross or mixed with another one.

Another version than the gallery's scores new queries against old vectors, which is allowed only
under a passing verdict at the gallery's FAR (gate.py); during a migration the search is mixed
(each item once, against its newest vector; mixed_search.py). Without a verdict the refusal is
the gate's one message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harmony.errors import InvalidInput
from harmony.gallery.catalog import open_gallery
from harmony.gallery.items import query_images
from harmony.migration.gate import VerdictView, verdict_view
from harmony.migration.mixed_search import load_partial, mixed_search
from harmony.migration.states import active_migration
from harmony.models.pipeline import FileEmbedder, check_dim

if TYPE_CHECKING:
    from harmony.gallery.store import Hit
    from harmony.registry import Registry
    from harmony.registry.records import Gallery


@dataclass(frozen=True)
class SearchResult:
    gallery: str
    query_version: str
    gallery_version: str  # the store's active version
    mode: str  # direct (same version) | cross (old vectors only) | mixed (old and new vectors)
    queries: tuple[str, ...]  # readable query files, in the order of ``hits``
    hits: list[list[Hit]]  # per query, nearest first
    unreadable: tuple[str, ...]
    verdict: VerdictView | None  # for cross/mixed


def search_gallery(reg: Registry, name: str, query: Path | str, k: int = 5, version: str | None = None, *,
                   batch_size: int = 256, device: str | None = None) -> SearchResult:
    """The ``k`` nearest items of each query image (a file, or every image under a folder).

    ``version`` defaults to the gallery's, or to the target of an in-flight migration whose
    target is compatible at the gallery's FAR (queries switch to it at once). Refused
    (Incompatible) when old vectors would be scored without a passing verdict.
    """
    if k < 1:
        raise InvalidInput(f"k must be >= 1, got {k}", hint="e.g. -k 5")
    record, store = open_gallery(reg, name)
    active = store.active_version
    q = reg.resolve(version) if version else _default_query_version(reg, record, active)
    check_dim(reg.get_version(q), store.dim, name)
    paths = query_images(query)
    view, partial, mode = None, None, "direct"
    if q != active:
        view = verdict_view(reg, q, active, record.far)
        partial = load_partial(store, q)
        table = store.items()
        n_new = int(np.union1d(partial.ids, table.ids[table.versions == q]).size)
        n_old = len(table) - n_new
        if n_old > 0 and not view.compatible:
            raise view.refusal(name, n_old)
        mode = "mixed" if n_new else "cross"
    emb = FileEmbedder(reg, q, batch_size=batch_size, device=device)
    vecs, ok = emb(paths)
    readable = tuple(p for p, good in zip(paths, ok) if good)
    if not readable:
        raise InvalidInput(f"none of the {len(paths)} query image(s) could be read", hint="check the query files")
    if mode == "direct":
        hits = store.search(vecs, k, active)
    else:
        hits = mixed_search(store, vecs, k, q, verdict=view, partial=partial)
    return SearchResult(name, q, active, mode, readable, hits, tuple(p for p, good in zip(paths, ok) if not good), view)


def _default_query_version(reg: Registry, record: Gallery, active: str) -> str:
    mig = active_migration(reg, record.name)
    if mig is not None and mig.target != active and verdict_view(reg, mig.target, active, record.far).compatible:
        return mig.target
    return active
