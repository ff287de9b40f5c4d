"""Re-embed a gallery with a new version, in batches, resumable after kill -9.

``run_backfill`` walks the items whose newest vector is not yet of the target version in the
backfill's order (order.py: ``sequential`` = their change counter (seq), ``random`` = a seeded
permutation, ``uncertainty`` = least trustworthy stored vectors first; fixed when the backfill
starts and kept in the checkpoint, so a resumed run continues in the same order), embeds each
batch with ``embed_fn`` and commits it as a checkpoint (see checkpoint.py). When nothing is left
it takes the gallery's write lock, embeds whatever changed meanwhile, builds the target index (trained on all new vectors for IVF/SQ8 codecs) and
installs it in the gallery: state "ready". Making it the active index is swap.py's job.

Items whose source cannot be read (``ok=False`` from embed_fn) are recorded and listed; they keep
their old vector. Re-running a finished backfill retries exactly those.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from harmony.errors import IntegrityError, InvalidInput
from harmony.gallery import index as fx
from harmony.gallery.store import GalleryStore, check_version_name
from harmony.gallery.table import ItemTable
from harmony.migration.checkpoint import BackfillDir, Cursor, Plan, latest_records, needs_embedding
from harmony.migration.order import SEQUENTIAL, UNCERTAINTY, OrderSpec, backfill_order, uncertainty_method
from harmony.migration.states import BACKFILLING, PLANNED, READY, ROLLED_BACK, SWAPPED
from harmony.progress import ProgressFn, tick

log = logging.getLogger(__name__)

EmbedFn = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]
"""``embed_fn(sources) -> (vectors, ok)``: ``ok`` (n,) bool marks readable sources, ``vectors``
is ``(ok.sum(), d)`` float32 L2-normalised, in the order of the readable sources."""


@dataclass(frozen=True)
class FailedItem:
    item_id: str
    source: str


@dataclass(frozen=True)
class BackfillTick:
    """Passed to ``on_batch`` after every committed batch (e.g. to mirror state in the registry)."""

    target: str
    done: int  # items processed (embedded or failed) over all runs of this backfill
    total: int  # done + still pending
    embedded: int
    failed: int
    last_seq: int
    batches: int  # committed segments


@dataclass(frozen=True)
class BackfillResult:
    target_version: str
    complete: bool  # True: the target index is installed in the gallery (state "ready")
    n_items: int  # items in the gallery
    n_target: int  # items whose newest vector is of the target version (0 until complete)
    n_embedded: int  # embedded by this run
    n_resumed: int  # processed by earlier, interrupted runs
    n_failed: int
    failed: tuple[FailedItem, ...]
    batches: int  # batches committed by this run
    embed_s: float  # time inside embed_fn
    index_s: float  # checks, training and adding to the target index
    write_s: float  # checkpoint and index writes (fsync included)
    total_s: float

    @property
    def items_per_s(self) -> float:
        return self.n_embedded / self.total_s if self.total_s > 0 else 0.0

    @property
    def embed_share(self) -> float:
        return self.embed_s / self.total_s if self.total_s > 0 else 0.0


@dataclass
class _Timers:
    embed: float = 0.0
    index: float = 0.0
    write: float = 0.0
    embedded: int = 0
    batches: int = 0
    t0: float = field(default_factory=time.perf_counter)


def pending_rows(table: ItemTable, target: str, cursor: Cursor | None, plan: Plan | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rows still to embed, in embedding order, and each row's position in the plan (-1: not planned).
    An item needs embedding when its newest vector is not of ``target`` or was converted to it by a
    transform (``migrate --via``: re-embedding from the source replaces it).

    First the planned entries from ``cursor.pos`` on whose item is unchanged since planning (same
    seq) and not yet of ``target``; then every item changed after ``cursor.last_seq`` (added or
    replaced since the start, or all items of a sequential backfill), by seq. A planned item that
    was replaced since carries a new seq, so it appears once, in the second part.
    """
    last_seq = cursor.last_seq if cursor is not None else -1
    need = needs_embedding(table, target)
    rows_a = pos_a = np.empty(0, np.int64)
    if cursor is not None and plan is not None and cursor.pos < plan.ids.size:
        pos_a = np.arange(cursor.pos, plan.ids.size, dtype=np.int64)
        rows_a = table.rows_of_ids(plan.ids[pos_a])
        live = rows_a >= 0
        live[live] = (table.seqs[rows_a[live]] == plan.seqs[pos_a[live]]) & need[rows_a[live]]
        rows_a, pos_a = rows_a[live], pos_a[live]
    rows_b = np.flatnonzero(need & (table.seqs > last_seq))
    rows_b = rows_b[np.argsort(table.seqs[rows_b], kind="stable")]
    return np.concatenate([rows_a, rows_b]), np.concatenate([pos_a, np.full(rows_b.size, -1, np.int64)])


def plan_order(store: GalleryStore, target: str, order: OrderSpec) -> tuple[Plan | None, str | None, int]:
    """Fix the order of a backfill about to start: (plan or None for sequential, score, last_seq).

    The plan lists the items pending now (newest vector not of ``target``) in embedding order;
    ``last_seq`` is the gallery's highest seq now, so later changes come after the plan. The
    uncertainty score reads each item's stored vector (in its own version's index)."""
    table = store.items()
    if order.policy == SEQUENTIAL:
        return None, None, -1
    rows = np.flatnonzero(needs_embedding(table, target))
    rows = rows[np.argsort(table.seqs[rows], kind="stable")]
    last_seq = int(table.seqs.max()) if len(table) else -1
    score = None
    if order.policy == UNCERTAINTY:
        check_order_codec(order, store.codec)
        labels = np.asarray(table.labels[rows]).astype(str)
        score = uncertainty_method(labels)
        vectors = np.empty((rows.size, store.dim), np.float32)
        for v in np.unique(table.versions[rows].astype(str)):  # one index per version the items' vectors are in
            sel = np.flatnonzero(table.versions[rows] == v)
            vectors[sel] = store.vectors([str(i) for i in table.item_ids[rows[sel]]], str(v))
        positions = backfill_order(order.policy, rows.size, vectors, labels, order.seed)
    else:
        positions = backfill_order(order.policy, rows.size, seed=order.seed)
    rows = rows[positions]
    return Plan(table.ids[rows].copy(), table.seqs[rows].copy()), score, last_seq


def check_order_codec(order: OrderSpec, codec: str) -> None:
    """The uncertainty order scores stored vectors, which IVF codecs do not keep."""
    if order.policy == UNCERTAINTY and codec.startswith("ivf"):
        raise InvalidInput(f"--order uncertainty scores the gallery's stored vectors, and codec {codec} keeps none",
                           hint="use --order random or --order sequential for this gallery")


def check_order_matches(cursor: Cursor, order: OrderSpec | None) -> None:
    """A backfill in progress keeps the order it started with; asking for another one is an error."""
    held = OrderSpec(cursor.order, cursor.seed)
    if order is not None and not order.same_as(held):
        raise InvalidInput(f"the backfill to {cursor.target} in progress runs in {held.describe()} order; it cannot "
                           f"change to {order.describe()}",
                           hint=f"re-run without --order (or with --order {held.policy}), or cancel it "
                                "(`harmony migrate rollback`) and start again")


def run_backfill(store: GalleryStore, target_version: str, embed_fn: EmbedFn, batch_size: int = 256,
                 progress: ProgressFn | None = None, stop_after: int | None = None,
                 on_batch: Callable[[BackfillTick], None] | None = None,
                 order: OrderSpec | None = None) -> BackfillResult:
    """Backfill ``store`` to ``target_version``; resume from the last checkpoint if one exists.

    ``order``: the order a new backfill uses (default sequential); a resumed one keeps the order
    it started with (InvalidInput if ``order`` names another).

    ``stop_after``: return (incomplete) after that many batches of this run, as an interruption
    would. ``progress`` gets a tick ``backfill -> <target>`` per batch (fields: rate in items/s,
    embed_share of the time spent embedding). Raises DiskFull (a HarmonyError) when the disk fills; the last checkpoint stays valid.
    """
    check_version_name(target_version)
    if batch_size < 1:
        raise InvalidInput(f"batch_size must be >= 1, got {batch_size}")
    bdir = BackfillDir(store.path, target_version)
    tm = _Timers()
    with bdir.lock():
        cursor = bdir.read_cursor()
        if cursor is None:
            spec = order or OrderSpec()
            plan, score, last_seq = plan_order(store, target_version, spec)
            cursor = bdir.start(store.dim, spec.policy, spec.seed, plan, score, last_seq)
        else:
            check_order_matches(cursor, order)
        if cursor.dim != store.dim:
            raise IntegrityError(f"backfill checkpoint has dimension {cursor.dim}, gallery {store.dim}",
                                 hint="discard the backfill and start again")
        bdir.clean_orphans(cursor)
        resumed = cursor.n_embedded + cursor.n_failed
        if resumed:
            log.info("resuming backfill of %s to %s after %d items", store.path, target_version, resumed)
        cursor, stopped = _drain(store, bdir, cursor, embed_fn, batch_size, stop_after, tm, progress, on_batch)
        if stopped:
            return _result(store, bdir, cursor, tm, resumed, complete=False)
        with store.write_lock():  # nobody adds items while we catch up and install the index
            cursor, _ = _drain(store, bdir, cursor, embed_fn, batch_size, None, tm, progress, on_batch)
            result = _finish(store, bdir, cursor, tm, resumed)
        bdir.discard()
    log.info("backfill of %s to %s complete: %d embedded, %d failed", store.path, target_version,
             result.n_embedded, result.n_failed)
    return result


def _drain(store: GalleryStore, bdir: BackfillDir, cursor: Cursor, embed_fn: EmbedFn, batch_size: int,
           stop_after: int | None, tm: _Timers, progress: ProgressFn | None,
           on_batch: Callable[[BackfillTick], None] | None) -> tuple[Cursor, bool]:
    """Embed and commit batches until nothing is pending (False) or stop_after batches (True)."""
    table = store.items()
    plan = bdir.read_plan(cursor)
    todo, planned = pending_rows(table, bdir.target, cursor, plan)
    pos, run_batches = 0, 0
    while True:
        if store.refresh():  # another process changed the gallery: re-plan from the cursor
            table = store.items()
            (todo, planned), pos = pending_rows(table, bdir.target, cursor, plan), 0
        done_before = cursor.n_embedded + cursor.n_failed
        _report(progress, bdir.target, done_before, done_before + len(todo) - pos, tm)
        if pos >= len(todo):
            return cursor, False
        if stop_after is not None and run_batches >= stop_after:
            return cursor, True
        rows, in_plan = todo[pos: pos + batch_size], planned[pos: pos + batch_size]
        t = time.perf_counter()
        vecs, ok = embed_fn([str(s) for s in table.sources[rows]])
        tm.embed += time.perf_counter() - t
        t = time.perf_counter()
        ok = np.asarray(ok, dtype=bool)
        if ok.shape != rows.shape:
            raise InvalidInput(f"embed_fn returned {ok.shape} ok flags for {rows.size} sources")
        vecs = fx.as_vectors(vecs, store.dim, f"{bdir.target} embeddings")
        if vecs.shape[0] != int(ok.sum()):
            raise InvalidInput(f"embed_fn returned {vecs.shape[0]} vectors for {int(ok.sum())} readable sources")
        tm.index += time.perf_counter() - t
        t = time.perf_counter()
        after = in_plan < 0  # changed since the start: by seq, after every planned entry
        last_seq = max(cursor.last_seq, int(table.seqs[rows[after]].max())) if after.any() else cursor.last_seq
        plan_pos = plan.ids.size if after.any() else int(in_plan.max()) + 1
        cursor = bdir.commit(cursor, table.ids[rows[ok]], table.seqs[rows[ok]], vecs,
                             table.ids[rows[~ok]], table.seqs[rows[~ok]], last_seq=last_seq, pos=plan_pos)
        tm.write += time.perf_counter() - t
        tm.embedded += int(ok.sum())
        tm.batches += 1
        run_batches += 1
        pos += rows.size
        if on_batch is not None:
            done = cursor.n_embedded + cursor.n_failed
            on_batch(BackfillTick(bdir.target, done, done + len(todo) - pos, cursor.n_embedded,
                                  cursor.n_failed, cursor.last_seq, cursor.n_segments))


def _finish(store: GalleryStore, bdir: BackfillDir, cursor: Cursor, tm: _Timers, resumed: int) -> BackfillResult:
    """Build the target index from the checkpoints and install it (caller holds the write lock)."""
    table = store.items()
    latest = latest_records(bdir.load(cursor), table, bdir.target)
    if latest.ok_ids.size or not store.has_index(bdir.target):
        t = time.perf_counter()
        index = store.index_copy(bdir.target)
        if index is None:
            index = fx.make_index(store.dim, store.codec, nlist=store.nlist, n=latest.ok_ids.size)
        if latest.ok_ids.size:
            fx.train_if_needed(index, latest.ok_vectors)
            fx.remove(index, latest.ok_ids)
            fx.add(index, latest.ok_ids, latest.ok_vectors)
        tm.index += time.perf_counter() - t
        t = time.perf_counter()
        store.install_index(bdir.target, index, latest.ok_ids)
        tm.write += time.perf_counter() - t
    return _result(store, bdir, cursor, tm, resumed, complete=True, failed_rows=latest.failed_rows)


def _result(store: GalleryStore, bdir: BackfillDir, cursor: Cursor, tm: _Timers, resumed: int,
            complete: bool, failed_rows: np.ndarray | None = None) -> BackfillResult:
    table = store.items()
    if failed_rows is None:  # interrupted run: failures recorded so far, where still current
        seg = bdir.load(cursor, vectors=False)
        rows = table.rows_of_ids(seg.failed_ids)
        keep = rows >= 0
        keep[keep] = table.seqs[rows[keep]] == seg.failed_seqs[keep]
        failed_rows = np.unique(rows[keep])
    failed = tuple(FailedItem(str(table.item_ids[r]), str(table.sources[r])) for r in failed_rows)
    n_target = int((table.versions == bdir.target).sum()) if complete else 0
    return BackfillResult(
        target_version=bdir.target, complete=complete, n_items=len(table), n_target=n_target,
        n_embedded=tm.embedded, n_resumed=resumed, n_failed=len(failed), failed=failed,
        batches=tm.batches, embed_s=tm.embed, index_s=tm.index, write_s=tm.write,
        total_s=time.perf_counter() - tm.t0)


# -- progress ---------------------------------------------------------------------------------

def _report(progress: ProgressFn | None, target: str, done: int, total: int, tm: _Timers) -> None:
    elapsed = time.perf_counter() - tm.t0
    tick(progress, f"backfill -> {target}", done, total, rate=tm.embedded / elapsed if elapsed > 0 else 0.0,
         embed_share=tm.embed / elapsed if elapsed > 0 else 0.0)


# -- status -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackfillStatus:
    target: str
    state: str  # as the folder tells it: planned | backfilling | ready | swapped | rolled_back (states.py)
    n_items: int
    done: int  # items processed by the backfill in progress
    pending: int  # items still without a target vector (failed ones included once finished)
    failed: int
    batches: int
    updated: str | None
    order: str | None = None  # the order of the backfill in progress (None: none in progress)
    seed: int | None = None  # its seed (random order)
    score: str | None = None  # its uncertainty score (uncertainty order)


def backfill_status(store: GalleryStore, target_version: str) -> BackfillStatus:
    """Where a migration of ``store`` to ``target_version`` stands, read from the gallery folder."""
    table = store.items()
    bdir = BackfillDir(store.path, target_version)
    cursor = bdir.read_cursor()
    if store.active_version == target_version:
        state = SWAPPED
    elif cursor is not None:
        state = BACKFILLING
    elif store.has_index(target_version):
        state = ROLLED_BACK if store.previous_version == target_version else READY
    else:
        state = PLANNED
    pending = int(pending_rows(table, target_version, cursor, bdir.read_plan(cursor) if cursor else None)[0].size)
    if cursor is None:
        return BackfillStatus(target_version, state, len(table), 0, pending, 0, 0, None)
    return BackfillStatus(target_version, state, len(table), cursor.n_embedded + cursor.n_failed, pending,
                          cursor.n_failed, cursor.n_segments, cursor.updated, cursor.order, cursor.seed, cursor.score)


def discard_backfill(store: GalleryStore, target_version: str) -> bool:
    """Delete an unfinished backfill's checkpoints (Busy while it runs); True if one existed."""
    bdir = BackfillDir(store.path, target_version)
    if not bdir.path.exists():
        return False
    with bdir.lock():
        bdir.discard()
    return True
