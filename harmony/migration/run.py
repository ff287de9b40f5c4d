"""Run a planned migration: registry row, resumable backfill, report, optional swap.

The gallery folder is the truth about progress: the backfill commits each batch (segment + cursor)
there, so kill -9 at any moment loses nothing and re-running the same command resumes. The
registry's migration row mirrors the cursor and counts (every ``mirror_every_s`` seconds and at
the end); a mirror write that finds the registry busy is skipped, never fatal, because the next
one (or the resume) rewrites it. States (states.py): planned -> backfilling -> ready [-> swapped].
Progress: ``progress`` gets the backfill's ticks (``backfill -> <target>``); the CLI draws them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harmony.errors import Busy
from harmony.gallery.catalog import open_gallery
from harmony.migration.backfill import BackfillResult, BackfillTick, run_backfill
from harmony.migration.distributed import Launch
from harmony.migration.lifecycle import SwapOutcome, swap_gallery
from harmony.migration.plan import MigrationPlan
from harmony.migration.report import MAX_ITEMS, migration_report
from harmony.migration.states import BACKFILLING, PLANNED, READY, SWAPPED, advance, begin, is_complete, reconcile
from harmony.models.pipeline import FileEmbedder
from harmony.progress import ProgressFn

if TYPE_CHECKING:
    from harmony.registry import Registry
    from harmony.registry.records import Migration

log = logging.getLogger(__name__)

FAILED_LISTED = 1000  # failed items kept in the registry row (all are counted)


@dataclass(frozen=True)
class MigrationOutcome:
    plan: MigrationPlan
    migration: Migration  # the registry row afterwards
    backfill: BackfillResult | None  # None when nothing was left to run
    report: dict[str, Any] | None
    swap: SwapOutcome | None
    fixed: tuple[str, ...]  # registry repairs made first (an interrupted swap or rollback)

    @property
    def complete(self) -> bool:
        return is_complete(self.migration)


class _Mirror:
    """``on_batch`` for run_backfill: copy the cursor and counts into the registry, throttled."""

    def __init__(self, reg: Registry, mid: int, every_s: float):
        self.reg, self.mid, self.every_s = reg, mid, every_s
        self.last_push = time.monotonic()
        self.tick: BackfillTick | None = None

    def __call__(self, tick: BackfillTick) -> None:
        self.tick = tick
        if time.monotonic() - self.last_push >= self.every_s:
            self.push()

    def push(self) -> None:
        t = self.tick
        if t is None:
            return
        try:
            advance(self.reg, self.mid, cursor=t.done, counts={
                "done": t.done, "total": t.total, "embedded": t.embedded, "failed": t.failed, "batches": t.batches})
        except Busy as e:  # the store holds the truth; the next push or the resume catches up
            log.warning("registry busy, progress not mirrored this time: %s", e.message)
        self.last_push = time.monotonic()


def backfill_counts(result: BackfillResult, embedder: FileEmbedder) -> dict[str, Any]:
    """What the registry row keeps about a backfill run (failed items listed up to FAILED_LISTED)."""
    return {"items": result.n_items, "target_vectors": result.n_target, "failed": result.n_failed,
            "failed_items": [{"item_id": f.item_id, "source": f.source} for f in result.failed[:FAILED_LISTED]],
            "embedded_this_run": result.n_embedded, "resumed_after": result.n_resumed,
            "batches_this_run": result.batches, "items_per_s": result.items_per_s, "total_s": result.total_s,
            "embed_s": result.embed_s, "read_s": embedder.read_s, "encode_s": embedder.encode_s,
            "index_s": result.index_s, "write_s": result.write_s}


def run_migration(reg: Registry, plan: MigrationPlan, *, batch_size: int = 256, swap: bool = False,
                  allow_missing: bool = False, eval_data: Path | str | None = None,
                  progress: ProgressFn | None = None,
                  stop_after: int | None = None, device: str | None = None, mirror_every_s: float = 1.0,
                  max_report_items: int = MAX_ITEMS, workers: int | None = None,
                  launch: Launch | None = None) -> MigrationOutcome:
    """Carry out (or resume) ``plan``. ``stop_after`` returns after that many batches of this run,
    as an interruption would (state stays backfilling). ``workers``: reader processes of the
    backfill (default: half the CPUs); ``launch``: embed over several processes (distributed.py;
    the ranks never open this registry). Raises DiskFull, Busy, RankFailed ... with the last
    committed batch intact and the registry row as it was; the same call then resumes."""
    reg.require_writable()  # before any image is read: a read-only or full registry cannot commit a batch
    fixed = tuple(reconcile(reg, plan.gallery))
    _, store = open_gallery(reg, plan.gallery)
    if plan.resume is None:
        mig = begin(reg, plan.gallery, plan.source, plan.target, plan.as_dict(batch_size, swap))
    else:
        mig = reg.get_migration(plan.resume)
        if mig.state == SWAPPED:  # reconcile just finished its interrupted swap
            return MigrationOutcome(plan, mig, None, mig.report or None, None, fixed)
    if mig.state == PLANNED:
        mig = advance(reg, mig.id, BACKFILLING)
    embedder = FileEmbedder(reg, plan.target, batch_size=batch_size, device=device)
    mirror = _Mirror(reg, mig.id, mirror_every_s)
    result = run_backfill(store, plan.target, embedder, batch_size=batch_size, progress=progress,
                          stop_after=stop_after, on_batch=mirror, order=plan.order, workers=workers, launch=launch)
    if not result.complete:
        mirror.push()
        return MigrationOutcome(plan, reg.get_migration(mig.id), result, None, None, fixed)
    mig = advance(reg, mig.id, None if mig.state == READY else READY,
                  cursor=result.n_target + result.n_failed, counts=backfill_counts(result, embedder))

    def embed(version: str, sources: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return FileEmbedder(reg, version, batch_size=batch_size, device=device)(sources)

    report = migration_report(store, plan.source, plan.target, plan.far, reg=reg, eval_data=eval_data, embed=embed,
                              max_items=max_report_items)
    mig = advance(reg, mig.id, report=report)
    swapped = swap_gallery(reg, plan.gallery, allow_missing=allow_missing) if swap else None
    if swapped is not None:
        mig = swapped.migration
    return MigrationOutcome(plan, mig, result, report, swapped, fixed)
