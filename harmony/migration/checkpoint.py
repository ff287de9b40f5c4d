"""Backfill checkpoints: append-only segments plus one atomically replaced cursor.

Folder ``<gallery>/migrations/<target>/``::

    CURSOR              json: committed segment count, last item seq done, counters, the order
    ORDER.npz           the planned order (ids, seqs), for orders other than sequential
    seg-00000000.npz    one per committed batch: ids, seqs, vectors (m, d) float32, failed ids/seqs
    .lock               the running backfill holds an flock on it
    SHARDS.npz          a distributed backfill's split of the pending items (ids, seqs, shard of each)
    shard-000/ ...      per shard: its own CURSOR and segments, committed by the rank embedding it

A batch commits in two steps: its segment file is written (temp, fsync, rename) under the next
free number, then CURSOR is replaced to count it. The cursor replacement is the commit point:
kill -9 before it leaves an orphan segment that the next run overwrites; after it, the batch is
durable. So the partial index (the committed segments) and the cursor always agree, and writing
costs O(batch) per batch rather than rewriting a growing index every time.

The order (harmony.migration.order) is fixed when the backfill starts and never recomputed:
``sequential`` needs no file (the items' seqs are the order; ``last_seq`` is the position);
``random`` and ``uncertainty`` write ORDER (the pending items' ids and seqs, in embedding order)
before the first CURSOR, and the cursor counts how many planned entries are done (``pos``). An
ORDER without a CURSOR (killed in between) is rewritten by the next start. Items added or
replaced after the start (seq above the plan's) come after the planned ones, by seq.

A distributed backfill (distributed.py) splits the pending items, in that order, into shards fixed
at its start (SHARDS, then ``n_shards`` in the cursor). Each shard commits like a backfill of its
own, under its own cursor, so a killed rank loses only its uncommitted batches and a finished
shard is never redone. When all are done their segments are merged into one segment here in one
commit (``n_shards`` back to 0), and the backfill finishes as a one-process one does.
"""

from __future__ import annotations

import io
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np

from harmony.errors import IntegrityError
from harmony.gallery.table import ItemTable
from harmony.io import atomic_write_json, atomic_writer, file_lock, is_temp_name, read_json

CURSOR = "CURSOR"
ORDER = "ORDER.npz"
SHARDS = "SHARDS.npz"
SHARD_PREFIX = "shard-"
MIGRATIONS = "migrations"  # under the gallery folder: one sub-folder per backfill target


def checkpoint_targets(gallery_path: Path | str) -> list[str]:
    """Target versions with a checkpoint folder (finished or not), sorted."""
    root = Path(gallery_path) / MIGRATIONS
    return sorted(d.name for d in root.iterdir() if d.is_dir()) if root.is_dir() else []


def backfills_in_progress(gallery_path: Path | str) -> tuple[str, ...]:
    """Target versions whose backfill has a committed cursor, i.e. is started and not finished."""
    return tuple(t for t in checkpoint_targets(gallery_path) if (Path(gallery_path) / MIGRATIONS / t / CURSOR).exists())


@dataclass(frozen=True)
class Cursor:
    target: str
    dim: int
    n_segments: int = 0  # committed segments seg-0 .. seg-(n-1)
    last_seq: int = -1  # every item with seq <= last_seq has been processed
    n_embedded: int = 0
    n_failed: int = 0
    started: str = ""
    updated: str = ""
    # the order, fixed at the start (defaults: a cursor written before orders existed is sequential)
    order: str = "sequential"
    seed: int = 0
    score: str | None = None  # uncertainty only: the score used (order.SCORES)
    n_planned: int = 0  # entries in ORDER (0: no plan file, seq order)
    pos: int = 0  # planned entries processed; with a plan, last_seq starts at the plan's highest seq
    n_shards: int = 0  # > 0: SHARDS splits the pending items over that many shard-<k>/ folders (distributed.py)


@dataclass(frozen=True)
class Plan:
    """The planned order of a backfill: item ids and their seqs when planned, first to embed first."""

    ids: np.ndarray  # (n,) int64
    seqs: np.ndarray  # (n,) int64


@dataclass(frozen=True)
class Shards:
    """The pending items of a distributed backfill split into fixed shards, in the backfill's order:
    entry i (id, seq) belongs to shard ``shard[i]``; each shard's entries keep that order. When every
    shard is done the main cursor moves to ``pos`` and ``last_seq`` (where a one-process backfill of
    the same entries would stand)."""

    ids: np.ndarray  # (n,) int64
    seqs: np.ndarray  # (n,) int64
    shard: np.ndarray  # (n,) int64 in [0, n_shards)
    last_seq: int
    pos: int

    def entries(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Shard ``k``'s (ids, seqs), in order."""
        sel = self.shard == k
        return self.ids[sel], self.seqs[sel]


@dataclass(frozen=True)
class Segments:
    """Committed backfill output, concatenated over segments."""

    ids: np.ndarray  # (m,) int64
    seqs: np.ndarray  # (m,) int64: the item's seq when it was embedded
    vectors: np.ndarray  # (m, d) float32
    failed_ids: np.ndarray
    failed_seqs: np.ndarray


@dataclass(frozen=True)
class Latest:
    """Per item, the newest committed record that still matches the gallery's current row."""

    ok_ids: np.ndarray
    ok_vectors: np.ndarray
    failed_rows: np.ndarray  # rows of the item table whose newest record is a failure


class BackfillDir:
    def __init__(self, gallery_path: Path, target: str):
        self.path = Path(gallery_path) / MIGRATIONS / target
        self.target = target

    def read_cursor(self) -> Cursor | None:
        p = self.path / CURSOR
        if not p.is_file():
            return None
        try:
            return Cursor(**read_json(p))
        except (TypeError, ValueError) as e:
            raise IntegrityError(f"backfill cursor {p} is unreadable: {e}",
                                 hint="discard the backfill (it restarts from scratch)") from None

    def start(self, dim: int, order: str = "sequential", seed: int = 0, plan: Plan | None = None,
              score: str | None = None, last_seq: int = -1) -> Cursor:
        """Create the cursor (the backfill's commit point zero); a ``plan`` is written durably first."""
        self.path.mkdir(parents=True, exist_ok=True)
        now = _now()
        n_planned = 0
        if plan is not None:
            buf = io.BytesIO()
            np.savez(buf, ids=plan.ids.astype(np.int64), seqs=plan.seqs.astype(np.int64))
            with atomic_writer(self.path / ORDER) as f:
                f.write(buf.getvalue())
            n_planned = int(plan.ids.shape[0])
        cursor = Cursor(target=self.target, dim=dim, started=now, updated=now, order=order, seed=int(seed),
                        score=score, n_planned=n_planned, last_seq=int(last_seq))
        atomic_write_json(self.path / CURSOR, asdict(cursor))
        return cursor

    @classmethod
    def at(cls, path: Path, target: str) -> BackfillDir:
        """A checkpoint folder at ``path`` itself (a shard's, inside its backfill's folder)."""
        d = cls.__new__(cls)
        d.path, d.target = Path(path), target
        return d

    def shard_dir(self, k: int) -> BackfillDir:
        """Shard ``k``'s own checkpoint folder: CURSOR (``pos`` = its entries done) and segments."""
        return BackfillDir.at(self.path / f"{SHARD_PREFIX}{k:03d}", self.target)

    def start_shards(self, cursor: Cursor, shards: Shards, n_shards: int) -> Cursor:
        """Fix the split (SHARDS written durably, then the cursor counts it: the commit point)."""
        buf = io.BytesIO()
        np.savez(buf, ids=shards.ids.astype(np.int64), seqs=shards.seqs.astype(np.int64),
                 shard=shards.shard.astype(np.int64), last_seq=np.int64(shards.last_seq), pos=np.int64(shards.pos))
        for k in range(n_shards):  # leftovers of an earlier split killed before its commit point
            shutil.rmtree(self.shard_dir(k).path, ignore_errors=True)
        with atomic_writer(self.path / SHARDS) as f:
            f.write(buf.getvalue())
        new = replace(cursor, n_shards=int(n_shards), updated=_now())
        atomic_write_json(self.path / CURSOR, asdict(new))
        return new

    def read_shards(self, cursor: Cursor) -> Shards:
        p = self.path / SHARDS
        try:
            with np.load(p, allow_pickle=False) as z:
                sh = Shards(z["ids"].astype(np.int64), z["seqs"].astype(np.int64), z["shard"].astype(np.int64),
                            int(z["last_seq"]), int(z["pos"]))
        except (OSError, ValueError, KeyError) as e:
            raise IntegrityError(f"backfill shards {p} are missing or unreadable: {e}",
                                 hint="discard the backfill and run it again") from None
        if sh.shard.size and (sh.shard.min() < 0 or sh.shard.max() >= cursor.n_shards):
            raise IntegrityError(f"backfill shards {p} name shards outside 0..{cursor.n_shards - 1}",
                                 hint="discard the backfill and run it again")
        return sh

    def shard_cursor(self, k: int, dim: int) -> Cursor:
        """Shard ``k``'s cursor, created (nothing done) on first use; orphans past it removed.
        Only the one process working on the shard calls this."""
        sd = self.shard_dir(k)
        c = sd.read_cursor()
        if c is None:
            c = sd.start(dim)
        sd.clean_orphans(c)
        return c

    def merge_shards(self, cursor: Cursor) -> Cursor:
        """Every shard done: their segments become ONE segment of this backfill and the cursor
        moves past the split (the commit point; killed before it, the merge is simply redone)."""
        sh = self.read_shards(cursor)
        parts = []
        for k in range(cursor.n_shards):
            sd = self.shard_dir(k)
            c = sd.read_cursor()
            n = int((sh.shard == k).sum())
            if n and (c is None or c.pos < n):
                raise IntegrityError(f"shard {k} of the backfill to {self.target} is not finished "
                                     f"({0 if c is None else c.pos} of {n})", hint="re-run the backfill to finish it")
            parts.append(sd.load(c) if c is not None else None)
        segs = [p for p in parts if p is not None]

        def cat(k: str, shape: tuple, dtype) -> np.ndarray:
            arrays = [getattr(p, k) for p in segs]
            return np.concatenate(arrays) if arrays else np.empty(shape, dtype)

        d = cursor.dim
        new = self.commit(cursor, cat("ids", (0,), np.int64), cat("seqs", (0,), np.int64),
                          cat("vectors", (0, d), np.float32), cat("failed_ids", (0,), np.int64),
                          cat("failed_seqs", (0,), np.int64), last_seq=max(cursor.last_seq, sh.last_seq), pos=sh.pos,
                          n_shards=0)
        self.clean_orphans(new)
        return new

    def read_plan(self, cursor: Cursor) -> Plan:
        """The planned order the cursor counts in (empty for a sequential backfill)."""
        if cursor.n_planned == 0:
            return Plan(np.empty(0, np.int64), np.empty(0, np.int64))
        p = self.path / ORDER
        try:
            with np.load(p, allow_pickle=False) as z:
                plan = Plan(z["ids"].astype(np.int64), z["seqs"].astype(np.int64))
        except (OSError, ValueError, KeyError) as e:
            raise IntegrityError(f"backfill order {p} is missing or unreadable: {e}",
                                 hint="discard the backfill and run it again") from None
        if plan.ids.shape != (cursor.n_planned,) or plan.seqs.shape != plan.ids.shape:
            raise IntegrityError(f"backfill order {p} holds {plan.ids.shape[0]} entries, the cursor "
                                 f"{cursor.n_planned}", hint="discard the backfill and run it again")
        return plan

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Only one backfill per target at a time; released by the OS if the process dies."""
        self.path.mkdir(parents=True, exist_ok=True)
        with file_lock(self.path / ".lock", 0.0, f"a backfill to {self.target} is already running on this gallery",
                       "wait for it, or stop that process (it resumes later)"):
            yield

    def clean_orphans(self, cursor: Cursor) -> None:
        """Delete segments past the cursor and temp files left by a killed run (and, with no split
        in flight, the shard folders of a merged one)."""
        for p in self.path.iterdir():
            n = _segment_number(p.name)
            if is_temp_name(p.name) or (n is not None and n >= cursor.n_segments):
                p.unlink(missing_ok=True)
            elif cursor.n_shards == 0 and p.name.startswith(SHARD_PREFIX):
                shutil.rmtree(p, ignore_errors=True)
            elif cursor.n_shards == 0 and p.name == SHARDS:
                p.unlink(missing_ok=True)

    def commit(self, cursor: Cursor, ids: np.ndarray, seqs: np.ndarray, vectors: np.ndarray,
               failed_ids: np.ndarray, failed_seqs: np.ndarray, last_seq: int, pos: int | None = None,
               n_shards: int | None = None) -> Cursor:
        """Durably append one batch; returns the new cursor (the old one stays valid on any error).
        ``pos``: planned entries processed after this batch (unchanged when None); ``n_shards``
        likewise (0: a merged split)."""
        buf = io.BytesIO()
        np.savez(buf, ids=ids.astype(np.int64), seqs=seqs.astype(np.int64), vectors=vectors,
                 failed_ids=failed_ids.astype(np.int64), failed_seqs=failed_seqs.astype(np.int64))
        with atomic_writer(self.path / _segment_name(cursor.n_segments)) as f:
            f.write(buf.getvalue())
        new = replace(cursor, n_segments=cursor.n_segments + 1, last_seq=int(last_seq),
                      pos=cursor.pos if pos is None else int(pos),
                      n_shards=cursor.n_shards if n_shards is None else int(n_shards),
                      n_embedded=cursor.n_embedded + int(ids.shape[0]),
                      n_failed=cursor.n_failed + int(failed_ids.shape[0]), updated=_now())
        atomic_write_json(self.path / CURSOR, asdict(new))
        return new

    def load(self, cursor: Cursor, vectors: bool = True) -> Segments:
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("ids", "seqs", "vectors", "failed_ids", "failed_seqs")}
        for n in range(cursor.n_segments):
            p = self.path / _segment_name(n)
            try:
                with np.load(p, allow_pickle=False) as z:
                    for k in parts:
                        if k in ("ids", "seqs", "vectors") and not vectors:
                            continue
                        parts[k].append(z[k])
            except (OSError, ValueError, KeyError) as e:
                raise IntegrityError(f"backfill segment {p} is missing or unreadable: {e}",
                                     hint="discard the backfill and run it again") from None
        d = cursor.dim

        def cat(k: str, shape: tuple, dtype) -> np.ndarray:
            return np.concatenate(parts[k]) if parts[k] else np.empty(shape, dtype)

        return Segments(cat("ids", (0,), np.int64), cat("seqs", (0,), np.int64),
                        cat("vectors", (0, d), np.float32), cat("failed_ids", (0,), np.int64),
                        cat("failed_seqs", (0,), np.int64))

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def needs_embedding(table: ItemTable, target: str) -> np.ndarray:
    """Bool mask over rows: the item has no ``target`` vector embedded from its source (none at
    all, or one a transform converted from a stored vector)."""
    return (table.versions != target) | table.converted


def latest_records(seg: Segments, table: ItemTable, target: str) -> Latest:
    """Resolve the segments against the current item table: per id the record with the highest
    seq wins, and it counts only if that seq is the item's current one (the item was not replaced
    or removed since) and the item still needs a target vector embedded from its source (it has
    none, or only one a transform converted)."""
    n_ok = seg.ids.shape[0]
    ids = np.concatenate([seg.ids, seg.failed_ids])
    seqs = np.concatenate([seg.seqs, seg.failed_seqs])
    if ids.size == 0:
        return Latest(np.empty(0, np.int64), seg.vectors[:0], np.empty(0, np.int64))
    order = np.lexsort((seqs, ids))
    last = order[np.r_[ids[order][1:] != ids[order][:-1], True]]
    rows = table.rows_of_ids(ids[last])
    valid = rows >= 0
    valid[valid] = (table.seqs[rows[valid]] == seqs[last][valid]) & needs_embedding(table, target)[rows[valid]]
    ok = valid & (last < n_ok)
    return Latest(ok_ids=ids[last[ok]], ok_vectors=seg.vectors[last[ok]],
                  failed_rows=rows[valid & (last >= n_ok)])


def _segment_name(n: int) -> str:
    return f"seg-{n:08d}.npz"


def _segment_number(name: str) -> int | None:
    if name.startswith("seg-") and name.endswith(".npz"):
        try:
            return int(name[4:-4])
        except ValueError:
            return None
    return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
