"""A gallery on disk: the item table plus one FAISS index per embedding version, in one folder.

Layout (every file is immutable once written, except the pointer ``gallery.json``)::

    gallery.json            meta: dim, codec, active/previous version, generation, file names,
                            the size + sha256 of each file and its own seal (checksums.py)
    items.<gen>.npz         the item table (see table.py)
    index-<version>.<gen>.faiss
    migrations/...          backfill checkpoints (their layout: harmony.migration.checkpoint)
    .lock                   writers hold an flock on it

A change writes new files under a new generation number, then atomically replaces
``gallery.json``; files no longer named there are deleted afterwards. A reader therefore always
sees one consistent generation, and a crash at any point leaves the previous one intact. Loading
the item table or an index checks it against the recorded size and sha256 (IntegrityError naming
the file and the fix on a mismatch).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from harmony.errors import (
    AlreadyExists,
    Busy,
    IntegrityError,
    InUse,
    InvalidInput,
    NotFound,
)
from harmony.gallery import checksums
from harmony.gallery import index as fx
from harmony.gallery.table import ItemTable
from harmony.io import (
    atomic_write_bytes,
    atomic_write_json,
    file_lock,
    fsync_dir,
    is_temp_name,
    read_json,
)
from harmony.registry.records import check_name

log = logging.getLogger(__name__)

META = "gallery.json"
FORMAT = 1
def check_version_name(version: str) -> str:
    """The registry's one name rule (versions, galleries, aliases): index file names carry it."""
    return check_name(version, "version")


@dataclass(frozen=True)
class Hit:
    """One search result: ``distance`` is squared L2 between the query and the stored vector of
    version ``version``."""

    item_id: str
    label: str
    distance: float
    version: str


@dataclass(frozen=True)
class GalleryInfo:
    path: str
    dim: int
    codec: str
    nlist: int | None
    nprobe: int | None
    active: str
    previous: str | None
    generation: int
    n_items: int
    items_by_version: dict[str, int]  # version of each item's newest vector
    converted_by_transform: dict[str, int]  # items whose newest vector a transform made (migrate --via)
    vectors_by_version: dict[str, int]  # vectors held by each version's index
    backfills: tuple[str, ...]  # target versions with a backfill in progress
    bytes_on_disk: int
    shards: int = 1  # CPU search shards (index.shard_index); 1 = one index
    gpu_mode: str = "shard"  # over several GPUs: shard | replicate (index.to_gpu)
    trained_on: dict[str, dict[str, int]] | None = None  # version -> {"sample", "pool"} of its codec training


class GalleryStore:
    """Open with :meth:`create` or :meth:`open`. Reads refresh from disk when another process
    committed; writes take the folder's lock (Busy after ``lock_timeout`` seconds)."""

    def __init__(self, path: Path, meta: dict, table: ItemTable, use_gpu: bool | None = None,
                 lock_timeout: float = 10.0):
        self.path = Path(path)
        self._meta = meta
        self._table = table
        self._cpu: dict[str, object] = {}  # index file name -> CPU faiss index
        self._gpu: dict[str, object] = {}  # index file name -> search view (GPU copy or CPU shards)
        self.use_gpu = fx.gpu_available() if use_gpu is None else use_gpu
        self.lock_timeout = lock_timeout
        self._lock_depth = 0

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path | str, dim: int, version: str, codec: str = "flat", *,
               nlist: int | None = None, nprobe: int | None = None, use_gpu: bool | None = None,
               shards: int = 1, gpu_mode: str = "shard") -> "GalleryStore":
        """Make an empty gallery whose active version is ``version``. ``shards``: CPU searches run
        over that many index shards in parallel; ``gpu_mode``: shard or replicate over several GPUs
        (placement only: the stored index is one file either way)."""
        path = Path(path)
        check_version_name(version)
        if codec not in fx.CODECS:
            raise InvalidInput(f"unknown codec {codec!r}", hint=f"use one of {', '.join(fx.CODECS)}")
        if dim <= 0:
            raise InvalidInput(f"dimension must be positive, got {dim}")
        if not 1 <= int(shards) <= fx.MAX_SHARDS:
            raise InvalidInput(f"shards must be in 1..{fx.MAX_SHARDS}, got {shards}", hint="e.g. --shards 4")
        fx.check_gpu_mode(gpu_mode)
        if (path / META).exists():
            raise AlreadyExists(f"a gallery already exists at {path}", hint="open it, or choose another folder")
        path.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "dim": int(dim), "codec": codec, "nlist": nlist, "nprobe": nprobe,
                "active": version, "previous": None, "generation": 0, "items": None, "indexes": {},
                "next_id": 0, "next_seq": 0, "created": _now(), "shards": int(shards), "gpu_mode": gpu_mode}
        store = cls(path, meta, ItemTable.empty(), use_gpu)
        with store.write_lock():
            if (path / META).exists():
                raise AlreadyExists(f"a gallery already exists at {path}", hint="open it")
            store._commit(table=ItemTable.empty())
        return store

    @classmethod
    def open(cls, path: Path | str, *, use_gpu: bool | None = None) -> "GalleryStore":
        path = Path(path)
        if not (path / META).is_file():
            raise NotFound(f"no gallery at {path}", hint="create one first (harmony gallery build)")
        store = cls(path, {"generation": -1}, ItemTable.empty(), use_gpu)
        store.refresh()
        return store

    # -- state --------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return int(self._meta["dim"])

    @property
    def codec(self) -> str:
        return self._meta["codec"]

    @property
    def nlist(self) -> int | None:
        return self._meta["nlist"]

    @property
    def shards(self) -> int:
        return int(self._meta.get("shards") or 1)  # galleries of an older harmony: one index

    @property
    def gpu_mode(self) -> str:
        return self._meta.get("gpu_mode") or "shard"

    @property
    def active_version(self) -> str:
        """The version searches use by default (re-read: another process may have swapped)."""
        self.refresh()
        return self._meta["active"]

    @property
    def previous_version(self) -> str | None:
        """The version rollback returns to, while its index exists."""
        self.refresh()
        return self._meta["previous"]

    @property
    def generation(self) -> int:
        return int(self._meta["generation"])

    def versions(self) -> tuple[str, ...]:
        """Versions that have an index in this gallery."""
        self.refresh()
        return tuple(sorted(self._meta["indexes"]))

    def has_index(self, version: str) -> bool:
        self.refresh()
        return version in self._meta["indexes"]

    def n_vectors(self, version: str) -> int:
        """Vectors held by the index of ``version`` (0 when it has none), without loading it."""
        self.refresh()
        return int(self._meta.get("sizes", {}).get(version, 0))

    def items(self) -> ItemTable:
        self.refresh()
        return self._table

    def refresh(self) -> bool:
        """Reload meta and table if another process committed since; True when something changed."""
        for attempt in range(5):
            meta = read_json(self.path / META)
            if meta.get("generation") == self._meta.get("generation"):
                return False
            if meta.get("format") != FORMAT:
                raise IntegrityError(f"gallery {self.path} has format {meta.get('format')}, expected {FORMAT}",
                                     hint="upgrade harmony")
            checksums.check_meta(self.path, meta)
            try:
                checksums.check_file(self.path, meta["items"], meta)
                table = ItemTable.load(self.path / meta["items"])
            except FileNotFoundError:  # a writer replaced the generation between our two reads
                time.sleep(0.05 * (attempt + 1))
                continue
            self._meta, self._table = meta, table
            live = set(meta["indexes"].values())
            self._cpu = {k: v for k, v in self._cpu.items() if k in live}
            self._gpu = {k: v for k, v in self._gpu.items() if k in live}
            return True
        raise Busy(f"gallery {self.path} keeps changing while being read", hint="retry")

    def index(self, version: str | None = None) -> object:
        """The CPU faiss index of ``version`` (default: active). Do not modify it in place."""
        attempts = 3
        while True:
            self.refresh()
            v = version or self._meta["active"]
            name = self._meta["indexes"].get(v)
            if name is None:
                raise NotFound(f"gallery {self.path.name} has no index for version {v}",
                               hint=f"versions here: {', '.join(sorted(self._meta['indexes'])) or 'none'}")
            if name in self._cpu:
                return self._cpu[name]
            try:
                try:
                    checksums.check_file(self.path, name, self._meta)
                except FileNotFoundError:
                    raise NotFound(f"index file {self.path / name} does not exist") from None
                self._cpu[name] = fx.load_index(self.path / name)
                return self._cpu[name]
            except NotFound:  # a writer committed a new generation and deleted this file meanwhile
                attempts -= 1
                if not attempts:
                    raise

    def _search_index(self, version: str) -> object:
        """What searches run on: the GPU copy (sharded or replicated over several GPUs), else the
        CPU index split into ``shards``, else the CPU index itself; built once per index file."""
        cpu = self.index(version)
        if not self.use_gpu and self.shards == 1:
            return cpu
        name = self._meta["indexes"][version]
        view = self._gpu.get(name)
        if view is None:
            view = fx.to_gpu(cpu, self.gpu_mode) if self.use_gpu else cpu
            if not fx.is_gpu(view) and self.shards > 1:
                view = fx.shard_index(cpu, self.shards)
            self._gpu[name] = view
        return view

    def warm(self, versions: Sequence[str] | None = None) -> None:
        """Load (and place) the search indexes of ``versions`` (default: all) now, not at the first query."""
        for v in versions if versions is not None else self.versions():
            if self.has_index(v):
                self._search_index(v)

    def pinned(self) -> GalleryStore:
        """A read-only copy frozen at this generation: refresh() never reloads, writes raise. A
        server builds one per generation and swaps the whole object, so a request that started on
        it finishes on it (its indexes warm in memory) while a swap commits underneath."""
        self.refresh()
        view = PinnedStore(self.path, self._meta, self._table, self.use_gpu)
        view._cpu = dict(self._cpu)
        view._gpu = dict(self._gpu)
        return view

    # -- writing ------------------------------------------------------------------------------

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Exclusive writer lock on the gallery folder (re-entrant within this object)."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        with file_lock(self.path / ".lock", self.lock_timeout,
                       f"gallery {self.path} is being written by another process", "wait for it to finish and retry"):
            self._lock_depth = 1
            try:
                if (self.path / META).exists():
                    self.refresh()
                yield
            finally:
                self._lock_depth = 0

    def add_items(self, item_ids: Sequence[str], sources: Sequence[str], labels: Sequence[str],
                  vectors: np.ndarray, version: str) -> tuple[int, int]:
        """Add or replace items with their ``(n, dim)`` unit vectors embedded by ``version``.

        Returns ``(added, replaced)``. A replaced item keeps its int64 id; its vectors of every
        other version are dropped (they described the old content).
        """
        x = fx.as_vectors(vectors, self.dim)
        if len(item_ids) != x.shape[0]:
            raise InvalidInput(f"{len(item_ids)} item ids for {x.shape[0]} vectors", hint="pass one vector per item")
        with self.write_lock():
            if version not in self._meta["indexes"] and version != self.active_version:
                raise InvalidInput(
                    f"gallery {self.path.name} serves {self.active_version}; {version} has no index here",
                    hint=f"embed with {self.active_version}, or migrate the gallery to {version} first")
            table, ids, was_there, next_id, next_seq = self._table.upsert(
                item_ids, sources, labels, version, self._meta["next_id"], self._meta["next_seq"])
            changed = self._drop_from_indexes(ids[was_there])
            target = changed[version] if version in changed else self.index_copy(version)
            if target is None:
                target = fx.make_index(self.dim, self.codec, nlist=self.nlist, n=x.shape[0])
            fx.add(target, ids, x)
            changed[version] = target
            self._commit(table=table, indexes=changed, next_id=next_id, next_seq=next_seq)
        replaced = int(was_there.sum())
        return x.shape[0] - replaced, replaced

    def remove_items(self, item_ids: Sequence[str], missing_ok: bool = False) -> int:
        """Remove items (table row and every version's vector); return how many were removed."""
        with self.write_lock():
            rows = [self._table.row_of_item.get(str(s), -1) for s in item_ids]
            missing = [s for s, r in zip(item_ids, rows) if r < 0]
            if missing and not missing_ok:
                raise NotFound(f"{len(missing)} item(s) not in gallery {self.path.name}, e.g. {missing[0]!r}",
                               hint="check the item ids (harmony gallery info)")
            ids = self._table.ids[np.array([r for r in rows if r >= 0], dtype=np.int64)]
            if ids.size == 0:
                return 0
            changed = self._drop_from_indexes(ids)
            self._commit(table=self._table.without_ids(ids), indexes=changed)
            return int(ids.size)

    def install_index(self, version: str, index: object, ids: np.ndarray, via: str = "") -> None:
        """Make ``index`` the stored index of ``version`` and mark ``ids`` as having their newest
        vector there (used by the backfill when it completes, and by a conversion, which names its
        transform in ``via``). Caller holds :meth:`write_lock`."""
        check_version_name(version)
        with self.write_lock():
            self._commit(table=self._table.with_versions(ids, version, via), indexes={version: index})

    def set_active(self, active: str, previous: str | None) -> None:
        """Point the gallery at ``active`` (must have an index); used by swap and rollback."""
        with self.write_lock():
            if active not in self._meta["indexes"]:
                raise NotFound(f"gallery {self.path.name} has no index for {active}")
            self._commit(active=active, previous=previous)

    def drop_index(self, version: str) -> None:
        """Delete the index of a version that is not active (garbage collection)."""
        with self.write_lock():
            if version == self.active_version:
                raise InUse(f"{version} is the active version of gallery {self.path.name}",
                            hint="swap to another version first")
            if version not in self._meta["indexes"]:
                raise NotFound(f"gallery {self.path.name} has no index for {version}")
            prev = None if self.previous_version == version else self.previous_version
            # Items whose newest vector lived there fall back to the active version, or a later
            # backfill to ``version`` would take them for done (e.g. after a rollback and gc).
            orphaned = self._table.ids[self._table.versions == version]
            table = self._table.with_versions(orphaned, self.active_version) if orphaned.size else None
            self._commit(table=table, indexes={version: None}, previous=prev)

    def index_copy(self, version: str) -> object | None:
        """A modifiable copy of a stored index (None when the version has none): what a backfill
        extends before :meth:`install_index` puts it back."""
        if version not in self._meta["indexes"]:
            return None
        import faiss
        return faiss.clone_index(self.index(version))

    def _drop_from_indexes(self, ids: np.ndarray) -> dict[str, object]:
        """Copies of the indexes that held any of ``ids``, with those removed."""
        changed = {}
        if ids.size == 0:
            return changed
        for v in self._meta["indexes"]:
            idx = self.index_copy(v)
            if fx.remove(idx, ids):
                changed[v] = idx
        return changed

    def _commit(self, table: ItemTable | None = None, indexes: dict[str, object | None] | None = None,
                **updates) -> None:
        """Write a new generation: changed files first, then the gallery.json pointer, then cleanup."""
        assert self._lock_depth, "commit outside the write lock"
        meta = dict(self._meta)
        gen = int(meta["generation"]) + 1
        meta.update(updates, generation=gen, updated=_now())
        meta["indexes"] = dict(meta["indexes"])
        meta["sizes"] = dict(meta.get("sizes", {}))
        files = dict(meta.get(checksums.FILES) or {})
        fresh, written = {}, []
        try:
            if table is not None:
                meta["items"] = f"items.{gen}.npz"
                written.append(self.path / meta["items"])
                data = table.to_bytes()
                atomic_write_bytes(written[-1], data)
                files[meta["items"]] = checksums.record(written[-1], data)
            meta["trained_on"] = dict(meta.get("trained_on") or {})
            for version, idx in (indexes or {}).items():
                if idx is None:
                    meta["indexes"].pop(version, None)
                    meta["sizes"].pop(version, None)
                    meta["trained_on"].pop(version, None)
                    continue
                trained = fx.training_sample(idx)  # trained in this process (index.train_if_needed)
                if trained is not None:
                    meta["trained_on"][version] = {"sample": trained[0], "pool": trained[1]}
                name = f"index-{check_version_name(version)}.{gen}.faiss"
                written.append(self.path / name)
                fx.save_index(idx, written[-1])
                files[name] = checksums.record(written[-1])
                meta["indexes"][version] = name
                meta["sizes"][version] = int(idx.ntotal)
                fresh[name] = fx.to_cpu(idx)
            for name in checksums.live_files(meta):  # a gallery of an older harmony: record them now
                if name not in files:
                    files[name] = checksums.record(self.path / name)
            meta[checksums.FILES] = {name: files[name] for name in checksums.live_files(meta)}
            meta = checksums.seal(meta)
            atomic_write_json(self.path / META, meta)  # the commit point
        except BaseException:
            for p in written:  # files of the generation that never became current
                p.unlink(missing_ok=True)
            raise
        self._meta = meta
        if table is not None:
            self._table = table
        self._cpu.update(fresh)
        live = set(meta["indexes"].values())
        self._cpu = {k: v for k, v in self._cpu.items() if k in live}
        self._gpu = {k: v for k, v in self._gpu.items() if k in live}
        self._remove_unreferenced()

    def _remove_unreferenced(self) -> None:
        live = {self._meta["items"], *self._meta["indexes"].values()}
        for p in self.path.iterdir():
            name = p.name
            stale = (name.startswith("items.") and name.endswith(".npz")) or \
                    (name.startswith("index-") and name.endswith(".faiss"))
            if (stale and name not in live) or is_temp_name(name):
                try:
                    p.unlink()
                except OSError:
                    pass
        fsync_dir(self.path)

    # -- reading ------------------------------------------------------------------------------

    def search_ids(self, queries: np.ndarray, k: int, version: str | None = None, *,
                   nprobe: int | None = None, exclude_ids: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Raw search of one version's index: ``(D, I)`` squared L2 and int64 ids (see index.search)."""
        version = version or self.active_version
        if version == self.active_version and not self.has_index(version):  # nothing added yet
            q = fx.as_vectors(queries, self.dim, "queries")
            return np.full((q.shape[0], k), np.inf, np.float32), np.full((q.shape[0], k), -1, np.int64)
        index = self._search_index(version)
        return fx.search(index, queries, k, nprobe=nprobe or self._meta.get("nprobe"), exclude_ids=exclude_ids)

    def search(self, queries: np.ndarray, k: int = 10, version: str | None = None, *,
               nprobe: int | None = None) -> list[list[Hit]]:
        """k nearest items per query in one version's index (default: active), nearest first."""
        version = version or self.active_version
        D, I = self.search_ids(queries, k, version, nprobe=nprobe)
        return self.hits(D, I, [version] * I.shape[1])

    def hits(self, D: np.ndarray, I: np.ndarray, versions) -> list[list[Hit]]:
        """Turn ``(D, I)`` into Hit lists; ``versions`` names the version of each column (or an
        array shaped like I). Ids no longer in the table are dropped."""
        table = self._table
        rows = table.rows_of_ids(I.ravel()).reshape(I.shape)
        vers = np.broadcast_to(np.asarray(versions, dtype=object), I.shape)
        out = []
        for q in range(I.shape[0]):
            out.append([Hit(str(table.item_ids[r]), str(table.labels[r]), float(D[q, j]), str(vers[q, j]))
                        for j, r in enumerate(rows[q]) if r >= 0 and I[q, j] >= 0])
        return out

    def vectors(self, item_ids: Sequence[str], version: str | None = None) -> np.ndarray:
        """Stored vectors ``(n, dim)`` of items (flat: exact; sq8: decoded). NotFound if absent."""
        table = self.items()
        rows = [table.row_of_item.get(s, -1) for s in item_ids]
        if any(r < 0 for r in rows):
            raise NotFound(f"item {item_ids[rows.index(-1)]!r} is not in gallery {self.path.name}")
        return fx.reconstruct(self.index(version), table.ids[np.array(rows, dtype=np.int64)])

    def info(self) -> GalleryInfo:
        from harmony.migration.checkpoint import (
            backfills_in_progress,  # the one module that knows that layout
        )

        self.refresh()
        backfills = backfills_in_progress(self.path)
        size = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        m = self._meta
        return GalleryInfo(
            path=str(self.path), dim=self.dim, codec=self.codec, nlist=m["nlist"], nprobe=m["nprobe"],
            active=self.active_version, previous=self.previous_version, generation=self.generation,
            n_items=len(self._table), items_by_version=self._table.count_by_version(),
            converted_by_transform=self._table.count_converted(),
            vectors_by_version={v: int(m["sizes"][v]) for v in sorted(m["indexes"])},
            backfills=backfills, bytes_on_disk=size, shards=self.shards, gpu_mode=self.gpu_mode,
            trained_on={v: dict(t) for v, t in (m.get("trained_on") or {}).items()})


class PinnedStore(GalleryStore):
    """:meth:`GalleryStore.pinned`: one generation, read-only."""

    def refresh(self) -> bool:
        return False

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        raise InvalidInput(f"a pinned view of gallery {self.path.name} is read-only",
                           hint="write through GalleryStore.open")
        yield  # pragma: no cover


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
