"""Search a gallery mid-migration with queries embedded by the new (target) version.

Every item is scored once, against its newest vector: the target-version vector when the backfill
has committed one (or the gallery already holds one), the old active-version vector otherwise.
Scoring new queries against old vectors is only meaningful when the registry has a passing
compatibility verdict for target -> active at the gallery's operating FAR; the caller passes that
verdict (gate.py). Without it, a search that would touch old vectors raises the gate's refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harmony.gallery import index as fx
from harmony.gallery.store import GalleryStore, Hit
from harmony.migration.checkpoint import BackfillDir, latest_records
from harmony.migration.gate import VerdictView


@dataclass(frozen=True)
class PartialIndex:
    """Target-version vectors committed by a running backfill and still current."""

    target: str
    ids: np.ndarray  # (m,) int64
    vectors: np.ndarray  # (m, d) float32

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        index = fx.make_index(self.vectors.shape[1], "flat")
        fx.add(index, self.ids, self.vectors)
        return fx.search(index, queries, k)


def load_partial(store: GalleryStore, target_version: str) -> PartialIndex:
    """Read the committed checkpoints of the backfill to ``target_version`` (empty if none)."""
    bdir = BackfillDir(store.path, target_version)
    cursor = bdir.read_cursor()
    if cursor is None:
        return PartialIndex(target_version, np.empty(0, np.int64), np.empty((0, store.dim), np.float32))
    latest = latest_records(bdir.load(cursor), store.items(), target_version)
    return PartialIndex(target_version, latest.ok_ids, latest.ok_vectors)


def mixed_search(store: GalleryStore, queries: np.ndarray, k: int, target_version: str, *,
                 verdict: VerdictView, partial: PartialIndex | None = None,
                 nprobe: int | None = None) -> list[list[Hit]]:
    """k nearest items per query (embedded by ``target_version``), each item once, nearest first.

    ``verdict``: the gate's view of ``target_version`` against the active version (old vectors are
    scored only when it passes). Hits carry the version of the vector they were scored against. ``partial`` may be passed to
    reuse one :func:`load_partial` over several calls.
    """
    q = fx.as_vectors(queries, store.dim, "queries")
    store.refresh()
    old = store.active_version
    if old == target_version:
        return store.search(q, k, target_version, nprobe=nprobe)
    table = store.items()
    partial = partial if partial is not None else load_partial(store, target_version)
    in_target = table.ids[table.versions == target_version]
    has_new = np.union1d(partial.ids, in_target)
    n_old_only = len(table) - int(has_new.size)
    if n_old_only > 0 and not verdict.compatible:
        raise verdict.refusal(store.path.name, n_old_only)
    cols_D, cols_I, cols_v = [], [], []

    def take(D: np.ndarray, I: np.ndarray, version: str) -> None:
        cols_D.append(D)
        cols_I.append(I)
        cols_v.append(np.full(I.shape, version, dtype=object))

    if partial.ids.size:
        take(*partial.search(q, k), target_version)
    if store.has_index(target_version) and in_target.size:  # re-embedded converted items: their partial vector
        take(*store.search_ids(q, k, target_version, nprobe=nprobe,
                               exclude_ids=partial.ids if partial.ids.size else None), target_version)
    if n_old_only > 0:
        take(*store.search_ids(q, k, old, nprobe=nprobe, exclude_ids=has_new), old)
    if not cols_I:
        return [[] for _ in range(q.shape[0])]
    D, I, V = np.hstack(cols_D), np.hstack(cols_I), np.hstack(cols_v)
    order = np.argsort(D, axis=1, kind="stable")[:, :k]
    D, I, V = (np.take_along_axis(a, order, 1) for a in (D, I, V))
    return store.hits(D, I, V)
