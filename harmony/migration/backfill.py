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

In one process three stages overlap (``_drain``): reader workers decode the next batches (when
embed_fn offers ``stages()``, as FileEmbedder does), this thread encodes, a committer thread
writes the previous batch (the cursor only ever counts durable segments). With ``launch`` the
pending items are split into shards embedded by Lightning ranks first (distributed.py).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterator

import numpy as np

from harmony.errors import IntegrityError, InvalidInput
from harmony.gallery import index as fx
from harmony.gallery.store import GalleryStore, check_version_name
from harmony.gallery.table import ItemTable
from harmony.machine import usable_cpus
from harmony.migration.checkpoint import BackfillDir, Cursor, Plan, latest_records, needs_embedding
from harmony.migration.distributed import Launch, embed_shards, shard_counts, split_pending, write_handoff
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
                 order: OrderSpec | None = None, workers: int | None = None,
                 launch: Launch | None = None) -> BackfillResult:
    """Backfill ``store`` to ``target_version``; resume from the last checkpoint if one exists.

    ``order``: the order a new backfill uses (default sequential); a resumed one keeps the order
    it started with (InvalidInput if ``order`` names another).

    ``workers``: reader processes decoding ahead of the encoder (default :func:`default_workers`;
    0: read in this thread). ``launch`` (distributed.py): with ``launch.world`` > 1 the pending
    items are split into that many shards, each embedded by its own Lightning rank, then merged
    (``embed_fn`` must be picklable; a ``FileEmbedder`` is sent by path). A split in flight is
    finished first, over ranks or (without ``launch``) here; ``stop_after`` does not cut it short.

    ``stop_after``: return (incomplete) after that many batches of this run, as an interruption
    would. ``progress`` gets a tick ``backfill -> <target>`` per batch (fields: rate in items/s,
    embed_share of the time spent embedding). Raises DiskFull (a HarmonyError) when the disk fills; the last checkpoint stays valid.
    """
    check_version_name(target_version)
    if batch_size < 1:
        raise InvalidInput(f"batch_size must be >= 1, got {batch_size}")
    workers = default_workers() if workers is None else workers
    if launch is not None and launch.world > 1 and stop_after is not None:
        raise InvalidInput("a distributed backfill runs its shards to the end; it cannot stop after N batches",
                           hint="drop --max-batches, or run in one process (--devices 1)")
    if workers < 0:
        raise InvalidInput(f"workers must be >= 0, got {workers}", hint="0 reads in the main process")
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
        split = launch is not None and launch.world > 1
        if split and cursor.n_shards == 0:
            cursor = _split(store, bdir, cursor, launch.world)
        if split and launch.multinode and cursor.n_shards == 0:  # nothing worth splitting: the other nodes exit
            write_handoff(launch, None, None, None, None, batch_size, workers)
        sharded = shard_counts(bdir, cursor)
        resumed = cursor.n_embedded + cursor.n_failed + sharded[0] + sharded[1]
        if resumed:
            log.info("resuming backfill of %s to %s after %d items", store.path, target_version, resumed)
        if cursor.n_shards:
            cursor = _run_split(store, bdir, cursor, embed_fn, batch_size, launch, workers, tm, sharded, on_batch,
                                progress)
        cursor, stopped = _drain(store, bdir, cursor, embed_fn, batch_size, stop_after, tm, progress, on_batch,
                                 workers)
        if stopped:
            return _result(store, bdir, cursor, tm, resumed, complete=False)
        with store.write_lock():  # nobody adds items while we catch up and install the index
            cursor, _ = _drain(store, bdir, cursor, embed_fn, batch_size, None, tm, progress, on_batch, workers)
            result = _finish(store, bdir, cursor, tm, resumed)
        bdir.discard()
    log.info("backfill of %s to %s complete: %d embedded, %d failed", store.path, target_version,
             result.n_embedded, result.n_failed)
    return result


def _split(store: GalleryStore, bdir: BackfillDir, cursor: Cursor, n_shards: int) -> Cursor:
    """Fix the shards of a distributed backfill: the items pending now, in the backfill's order."""
    table = store.items()
    plan = bdir.read_plan(cursor)
    todo, planned = pending_rows(table, bdir.target, cursor, plan)
    if todo.size < 2:  # nothing worth splitting: a one-process pass does it
        return cursor
    shards = split_pending(table.ids[todo], table.seqs[todo], planned, plan.ids.size, cursor, min(n_shards, todo.size))
    return bdir.start_shards(cursor, shards, min(n_shards, todo.size))


def _watch_shards(bdir: BackfillDir, cursor: Cursor, progress: ProgressFn | None, tm: _Timers,
                  stop: threading.Event, every_s: float = 0.5) -> None:
    """Progress ticks while the ranks work: what their shard cursors have committed so far."""
    if progress is None:
        return
    total = cursor.n_embedded + cursor.n_failed + int(bdir.read_shards(cursor).ids.size)
    first = sum(shard_counts(bdir, cursor)[:2])
    while not stop.wait(every_s):
        e, f, _ = shard_counts(bdir, cursor)
        elapsed = time.perf_counter() - tm.t0
        tick(progress, f"backfill -> {bdir.target}", cursor.n_embedded + cursor.n_failed + e + f, total,
             rate=(e + f - first) / elapsed if elapsed > 0 else 0.0, embed_share=1.0)


def _run_split(store: GalleryStore, bdir: BackfillDir, cursor: Cursor, embed_fn: EmbedFn, batch_size: int,
               launch: Launch | None, workers: int, tm: _Timers, before: tuple[int, int, int],
               on_batch: Callable[[BackfillTick], None] | None, progress: ProgressFn | None = None) -> Cursor:
    """Embed the unfinished shards of the split in flight (distributed.embed_shards), then merge
    them into this backfill in one commit; this run's share goes into ``tm``."""
    t = time.perf_counter()
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_shards, args=(bdir, cursor, progress, tm, stop), daemon=True)
    watcher.start()
    try:
        embed_shards(store, bdir, cursor, embed_fn, batch_size, launch, workers)
    finally:
        stop.set()
        watcher.join()
    embedded, _, segments = shard_counts(bdir, cursor)
    tm.embedded += embedded - before[0]
    tm.batches += segments - before[2]
    tm.embed += time.perf_counter() - t
    t = time.perf_counter()
    cursor = bdir.merge_shards(cursor)
    tm.write += time.perf_counter() - t
    if on_batch is not None:
        done = cursor.n_embedded + cursor.n_failed
        on_batch(BackfillTick(bdir.target, done, done, cursor.n_embedded, cursor.n_failed, cursor.last_seq,
                              cursor.n_segments))
    return cursor


def _drain(store: GalleryStore, bdir: BackfillDir, cursor: Cursor, embed_fn: EmbedFn, batch_size: int,
           stop_after: int | None, tm: _Timers, progress: ProgressFn | None,
           on_batch: Callable[[BackfillTick], None] | None, workers: int = 0) -> tuple[Cursor, bool]:
    """Embed and commit batches until nothing is pending (False) or stop_after batches (True).

    Three stages overlap: reader workers decode the next batches (``embed_fn.stages()``, when it
    has them and ``workers`` > 0), this thread encodes, a committer thread makes the previous
    batch durable. A pass ends early when another process changes the gallery: the commits are
    flushed and the pending rows re-planned from the durable cursor."""
    table = store.items()
    plan = bdir.read_plan(cursor)
    run_batches = 0
    with _Committer(bdir, cursor, tm, on_batch) as com:
        while True:
            cursor = com.flush()
            todo, planned = pending_rows(table, bdir.target, cursor, plan)
            done_before = cursor.n_embedded + cursor.n_failed
            _report(progress, bdir.target, done_before, done_before + len(todo), tm)
            if not len(todo):
                return cursor, False
            if stop_after is not None and run_batches >= stop_after:
                return cursor, True
            starts = list(range(0, len(todo), batch_size))
            if stop_after is not None:
                starts = starts[:stop_after - run_batches]
            sources = [[str(s) for s in table.sources[todo[a: a + batch_size]]] for a in starts]
            with embedded_batches(embed_fn, sources, workers) as results:
                for a in starts:
                    t = time.perf_counter()
                    vecs, ok = next(results)
                    tm.embed += time.perf_counter() - t
                    rows, in_plan = todo[a: a + batch_size], planned[a: a + batch_size]
                    com.put(_batch(table, store.dim, bdir.target, rows, in_plan, plan, vecs, ok, tm,
                                   left=len(todo) - a - rows.size))
                    run_batches += 1
                    _report(progress, bdir.target, done_before + a + rows.size, done_before + len(todo), tm)
                    if store.refresh():  # another process changed the gallery: re-plan from the cursor
                        table = store.items()
                        break


def _batch(table: ItemTable, dim: int, target: str, rows: np.ndarray, in_plan: np.ndarray, plan: Plan,
           vecs: np.ndarray, ok: np.ndarray, tm: _Timers, left: int) -> _Batch:
    """Check one batch's embedder output and turn it into what the committer writes."""
    t = time.perf_counter()
    vecs, ok = check_output(vecs, ok, rows.size, dim, target)
    after = in_plan < 0  # changed since the start: by seq, after every planned entry
    seq_after = int(table.seqs[rows[after]].max()) if after.any() else -1
    plan_pos = plan.ids.size if after.any() else int(in_plan.max()) + 1
    tm.index += time.perf_counter() - t
    tm.embedded += int(ok.sum())
    tm.batches += 1
    return _Batch(table.ids[rows[ok]], table.seqs[rows[ok]], vecs, table.ids[rows[~ok]], table.seqs[rows[~ok]],
                  seq_after, plan_pos, left)


def check_output(vecs: np.ndarray, ok: np.ndarray, n: int, dim: int, target: str) -> tuple[np.ndarray, np.ndarray]:
    """An embed_fn's answer for ``n`` sources, checked: ``ok`` (n,) bool, ``ok.sum()`` unit rows of ``dim``."""
    ok = np.asarray(ok, dtype=bool)
    if ok.shape != (n,):
        raise InvalidInput(f"embed_fn returned {ok.shape} ok flags for {n} sources")
    vecs = fx.as_vectors(vecs, dim, f"{target} embeddings")
    if vecs.shape[0] != int(ok.sum()):
        raise InvalidInput(f"embed_fn returned {vecs.shape[0]} vectors for {int(ok.sum())} readable sources")
    return vecs, ok


# -- the pipeline stages: reader workers and the committer thread ----------------------------

Reader = Callable[[list[str]], Any]


def default_workers() -> int:
    """Reader processes for a backfill: half the CPUs (the other half encode), at most 4; none on
    two CPUs or fewer, where a reader only takes a core from the encoder (bench_migration on 2 idle
    cores: 0.88x the naive re-embed with one reader, 0.96x with none)."""
    cpus = usable_cpus()
    return 0 if cpus <= 2 else min(4, cpus // 2)


def embed_stages(embed_fn: EmbedFn) -> tuple[Reader | None, Callable[[Any], tuple[np.ndarray, np.ndarray]]]:
    """``(reader, encode)`` of an embed_fn that offers them (``FileEmbedder.stages``), else
    ``(None, embed_fn)``: a plain callable runs whole, in this thread."""
    stages = getattr(embed_fn, "stages", None)
    return stages() if callable(stages) else (None, embed_fn)


def watch_parent(pid: int, every_s: float = 0.5) -> None:
    """Exit this process soon after process ``pid`` is gone. Reader workers and ranks start from
    a forkserver, whose children hold it alive: without this they would outlive a kill -9 of the
    backfill (and a rank could still write its shard while a resumed run starts)."""
    def loop() -> None:
        while True:
            time.sleep(every_s)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # alive, another user's: cannot be ours, but keep waiting
                pass

    threading.Thread(target=loop, name=f"watch-{pid}", daemon=True).start()


def reader_init(parent: int, _: int) -> None:
    """Reader workers must not reuse the parent's OpenMP pool (DESIGN section 7: fork hang; the
    same as ``harmony.data.datamodule.worker_init``, without importing Lightning into each worker)
    and end with the backfill that started them (``parent``, bound with functools.partial)."""
    import torch

    torch.set_num_threads(1)
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:
        pass
    watch_parent(parent)


def _as_is(x: Any) -> Any:
    """collate_fn of the reader DataLoader: keep the reader's numpy output (no tensor conversion)."""
    return x


@dataclass(frozen=True)
class ReadBatches:
    """A map-style dataset whose item ``i`` is ``reader(batches[i])``: what a reader worker runs."""

    reader: Reader
    batches: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> Any:
        return self.reader(list(self.batches[i]))


@contextmanager
def embedded_batches(embed_fn: EmbedFn, batches: list[list[str]], workers: int
                     ) -> Iterator[Iterator[tuple[np.ndarray, np.ndarray]]]:
    """``(vectors, ok)`` per batch of sources, in order. With ``workers`` and a staged embed_fn
    the batches are read ahead by a DataLoader (forkserver workers, two batches each) while this
    thread encodes; otherwise each batch is embedded whole when asked for. Fewer than two batches
    have nothing to overlap and start no worker."""
    reader, encode = embed_stages(embed_fn)
    if reader is None or workers < 1 or len(batches) < 2:
        yield (embed_fn(b) for b in batches)
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(ReadBatches(reader, tuple(tuple(b) for b in batches)), batch_size=None, collate_fn=_as_is,
                        num_workers=min(workers, len(batches)), worker_init_fn=partial(reader_init, os.getpid()),
                        multiprocessing_context="forkserver", prefetch_factor=2)
    it = iter(loader)
    try:
        yield (encode(r) for r in it)
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)  # stop read-ahead now, not at garbage collection
        if shutdown is not None:
            shutdown()


@dataclass(frozen=True)
class _Batch:
    ids: np.ndarray
    seqs: np.ndarray
    vectors: np.ndarray
    failed_ids: np.ndarray
    failed_seqs: np.ndarray
    seq_after: int  # highest seq among items changed after the start (-1: none)
    pos: int  # planned entries processed after this batch
    left: int  # items of the pass still pending after it (for the tick)


class _Committer:
    """Commits batches in order on one background thread, so that the next batch is read and
    encoded while this one is written and fsynced. At most ``depth`` batches wait; the cursor it
    keeps only ever counts durable segments (``BackfillDir.commit``), so kill -9 loses at most
    the waiting batches, which a resume embeds again. An error there (DiskFull ...) is raised in
    the caller's thread at the next ``put``/``flush``; ``on_batch`` also runs in the caller's thread."""

    def __init__(self, bdir: BackfillDir, cursor: Cursor, tm: _Timers,
                 on_batch: Callable[[BackfillTick], None] | None, depth: int = 2):
        self.bdir, self.cursor, self.tm, self.on_batch = bdir, cursor, tm, on_batch
        self._q: queue.Queue[_Batch | None] = queue.Queue(maxsize=depth)
        self._done: deque[tuple[Cursor, int]] = deque()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"backfill-commit-{bdir.target}", daemon=True)
        self._thread.start()

    def __enter__(self) -> _Committer:  # noqa: PYI034 - private, never subclassed
        return self

    def __exit__(self, *exc: object) -> None:
        self._q.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            b = self._q.get()
            try:
                if b is None:
                    return
                if self._error is None:  # after an error: drain without writing, so put() never blocks
                    t = time.perf_counter()
                    self.cursor = self.bdir.commit(self.cursor, b.ids, b.seqs, b.vectors, b.failed_ids,
                                                   b.failed_seqs, last_seq=max(self.cursor.last_seq, b.seq_after),
                                                   pos=b.pos)
                    self.tm.write += time.perf_counter() - t
                    self._done.append((self.cursor, b.left))
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                self._error = e
            finally:
                self._q.task_done()

    def put(self, batch: _Batch) -> None:
        self._deliver()
        self._q.put(batch)

    def flush(self) -> Cursor:
        """Wait until every batch put so far is durable; the cursor that counts them."""
        self._q.join()
        self._deliver()
        return self.cursor

    def _deliver(self) -> None:
        while self._done:
            c, left = self._done.popleft()
            if self.on_batch is not None:
                done = c.n_embedded + c.n_failed
                self.on_batch(BackfillTick(self.bdir.target, done, done + left, c.n_embedded, c.n_failed,
                                           c.last_seq, c.n_segments))
        if self._error is not None:
            raise self._error


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
    e, f, s = shard_counts(bdir, cursor)  # a distributed split in flight: what its shards committed
    return BackfillStatus(target_version, state, len(table), cursor.n_embedded + cursor.n_failed + e + f,
                          max(0, pending - e - f), cursor.n_failed + f, cursor.n_segments + s, cursor.updated,
                          cursor.order, cursor.seed, cursor.score)


def discard_backfill(store: GalleryStore, target_version: str) -> bool:
    """Delete an unfinished backfill's checkpoints (Busy while it runs); True if one existed."""
    bdir = BackfillDir(store.path, target_version)
    if not bdir.path.exists():
        return False
    with bdir.lock():
        bdir.discard()
    return True
