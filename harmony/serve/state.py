"""What a search service answers from: the gallery's *current* state, followed without a restart.

A :class:`Snapshot` is one immutable view of a gallery: a pinned store (one generation of
``gallery.json``, its indexes warm in memory), the serving version, the migration in flight and
its committed backfill vectors. :class:`GalleryService` holds the current snapshot and, at most
every ``check_every_s`` seconds, compares a cheap key (the store's generation, the backfill
cursor file, and every ``registry_every_s`` the newest migration row) with the snapshot's; on a
change it builds the next snapshot (before answering when the generation or migration changed,
in the background when only the backfill progressed) and swaps the reference (one assignment). A request takes the
reference once and finishes on it, so a swap or rollback committed by another process
(`harmony migrate swap|rollback`) never fails a request in flight; the next request sees it.
While one thread builds, the others keep answering from the current snapshot; a build that
fails (the registry busy, a file mid-replacement) keeps the current one and is retried.

The search rules are `harmony gallery search`'s (harmony.migration.search): queries default to
the target of an in-flight migration that is compatible at the gallery's FAR (the search is
then mixed: each item once, against its newest vector), else to the serving version; scoring
another version's queries against old vectors needs a passing verdict (the gate's refusal).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harmony.errors import HarmonyError, InvalidInput
from harmony.gallery import index as fx
from harmony.gallery.catalog import open_gallery
from harmony.migration.checkpoint import CURSOR, BackfillDir
from harmony.migration.gate import VerdictView, verdict_view
from harmony.migration.mixed_search import PartialIndex, load_partial, mixed_search
from harmony.migration.states import active_migration
from harmony.models.pipeline import FileEmbedder, check_dim

if TYPE_CHECKING:
    from harmony.gallery.store import GalleryStore, Hit
    from harmony.registry import Registry
    from harmony.registry.records import Gallery, Migration

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltPartial(PartialIndex):
    """A backfill's committed vectors with their flat index built once per snapshot (the plain
    PartialIndex builds it on every search; a server asks thousands of times per snapshot)."""

    index: Any = None

    @classmethod
    def of(cls, p: PartialIndex) -> BuiltPartial:
        index = fx.make_index(p.vectors.shape[1], "flat")
        fx.add(index, p.ids, p.vectors)
        return cls(p.target, p.ids, p.vectors, index)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return fx.search(self.index, queries, k)


@dataclass(frozen=True)
class Answer:
    """One query's result: ``mode`` direct | cross | mixed (as `gallery search` says it)."""

    query_version: str
    gallery_version: str
    mode: str
    generation: int
    hits: list[Hit]


@dataclass
class Snapshot:
    """One generation of a gallery, read-only; safe to search from many threads at once."""

    key: tuple
    record: Gallery
    store: GalleryStore  # pinned (GalleryStore.pinned)
    migration: Migration | None  # in flight (planned, backfilling, ready)
    query_version: str  # the default version of queries
    built: float = field(default_factory=time.time)
    _cross: dict[str, tuple[VerdictView, PartialIndex]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def active(self) -> str:
        return self.store.active_version

    def health(self) -> dict[str, Any]:
        m = self.migration
        return {"gallery": self.record.name, "active_version": self.active, "query_version": self.query_version,
                "generation": self.store.generation, "items": len(self.store.items()), "dim": self.store.dim,
                "codec": self.store.codec, "far": self.record.far, "shards": self.store.shards,
                "migration": None if m is None else {"id": m.id, "source": m.source, "target": m.target,
                                                     "state": m.state}}

    def cross(self, reg: Registry, version: str) -> tuple[VerdictView, PartialIndex]:
        """The gate's verdict for ``version`` queries on the active vectors, and the backfill's
        committed ``version`` vectors (read once per snapshot)."""
        with self._lock:
            if version not in self._cross:
                self._cross[version] = (verdict_view(reg, version, self.active, self.record.far),
                                        BuiltPartial.of(load_partial(self.store, version)))
            return self._cross[version]

    def search(self, reg: Registry, vectors: np.ndarray, k: int, version: str) -> list[Answer]:
        """``vectors`` ``(n, dim)`` unit rows embedded by ``version``: the k nearest items of each."""
        q = fx.as_vectors(vectors, self.store.dim, "query vectors")
        if not 1 <= k <= fx.GPU_MAX_K:
            raise InvalidInput(f"k must be in 1..{fx.GPU_MAX_K}, got {k}", hint="e.g. k=5")
        active, mode = self.active, "direct"
        if version == active:
            hits = self.store.search(q, k, active)
        else:
            view, partial = self.cross(reg, version)
            table = self.store.items()
            n_new = int(np.union1d(partial.ids, table.ids[table.versions == version]).size)
            n_old = len(table) - n_new
            if n_old > 0 and not view.compatible:
                raise view.refusal(self.record.name, n_old)
            mode = "mixed" if n_new else "cross"
            hits = mixed_search(self.store, q, k, version, verdict=view, partial=partial)
        return [Answer(version, active, mode, self.store.generation, h) for h in hits]


class GalleryService:
    """The current :class:`Snapshot` of one gallery, re-checked on a short interval (see the
    module docstring); plus one embedder per version for uploaded photos."""

    def __init__(self, reg: Registry, gallery: str, *, check_every_s: float = 0.1, registry_every_s: float = 1.0,
                 use_gpu: bool | None = None, device: str | None = None, batch_size: int = 32):
        self.reg, self.gallery = reg, gallery
        self.check_every_s, self.registry_every_s = float(check_every_s), float(registry_every_s)
        self.device, self.batch_size = device, batch_size
        self._record, self._live = open_gallery(reg, gallery, use_gpu=use_gpu)  # NotFound: unknown gallery
        self._lock = threading.Lock()
        self._embedders: dict[str, FileEmbedder] = {}
        self._resolved: dict[str, str] = {}
        self._migration: Migration | None = None
        self._checked = self._registry_checked = 0.0
        self._seen_generation = -1
        self.snapshots_built = 0
        self._snap = self._build(self._key(read_registry=True))

    # -- following the gallery ----------------------------------------------------------------

    def _key(self, read_registry: bool) -> tuple:
        """What decides the snapshot: store generation, backfill cursor file, newest migration.
        The registry is read when asked, and always when the store changed (a swap or rollback
        commits the store first, the registry right after)."""
        self._live.refresh()
        if read_registry or self._live.generation != self._seen_generation:
            self._record = self.reg.get_gallery(self.gallery)
            self._migration = active_migration(self.reg, self.gallery)
            self._registry_checked = time.monotonic()
            self._seen_generation = self._live.generation
        m = self._migration
        cursor = None
        if m is not None:
            try:
                st = os.stat(BackfillDir(self._live.path, m.target).path / CURSOR)
                cursor = (st.st_ino, st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                pass
        return (self._live.generation, None if m is None else (m.id, m.state, m.target), cursor)

    def _build(self, key: tuple) -> Snapshot:
        store, m = self._live, self._migration
        active = store.active_version
        query = active
        if m is not None and m.target != active and \
                verdict_view(self.reg, m.target, active, self._record.far).compatible:
            query = m.target
        store.warm([v for v in {active, query} if store.has_index(v)])
        snap = Snapshot(key, self._record, store.pinned(), m, query)
        if query != active:
            snap.cross(self.reg, query)  # the backfill's vectors loaded now, not in the first request
        self.snapshots_built += 1
        log.info("serving gallery %s generation %d: %s (queries %s)", self.gallery, store.generation, active, query)
        return snap

    def current(self) -> Snapshot:
        """The snapshot to answer from. A changed generation or migration row is built first (the
        request that noticed waits for it: a swap is followed at once); backfill progress alone
        (the cursor moved) is built in the background while requests keep the current snapshot.
        At most one thread builds; the others answer from the current snapshot meanwhile."""
        snap = self._snap
        now = time.monotonic()
        if now - self._checked < self.check_every_s or not self._lock.acquire(blocking=False):
            return snap
        handed_over = False
        try:
            self._checked = now
            key = self._key(read_registry=now - self._registry_checked >= self.registry_every_s)
            if key[:2] != snap.key[:2]:
                self._snap = self._build(key)
            elif key != snap.key:
                threading.Thread(target=self._build_in_background, args=(key,), daemon=True).start()
                handed_over = True  # that thread releases the lock
        except (HarmonyError, OSError) as e:  # registry busy, a backfill folder just removed: keep serving
            log.warning("gallery %s: keeping generation %d for now (%s)", self.gallery, snap.store.generation, e)
        finally:
            if not handed_over:
                self._lock.release()
        return self._snap

    def _build_in_background(self, key: tuple) -> None:
        try:
            self._snap = self._build(key)
        except (HarmonyError, OSError) as e:
            log.warning("gallery %s: backfill progress not loaded yet (%s)", self.gallery, e)
        finally:
            self._lock.release()

    # -- answering ----------------------------------------------------------------------------

    def resolve(self, version: str | None, snap: Snapshot) -> str:
        """A requested version (name or alias) as a version name, checked against the gallery's dim."""
        if version is None:
            return snap.query_version
        if version not in self._resolved:
            name = self.reg.resolve(version)
            check_dim(self.reg.get_version(name), snap.store.dim, self.gallery)
            self._resolved[version] = name
        return self._resolved[version]

    def search_vectors(self, vectors: np.ndarray, k: int, version: str | None = None) -> list[Answer]:
        snap = self.current()
        return snap.search(self.reg, vectors, k, self.resolve(version, snap))

    def embedder(self, version: str) -> FileEmbedder:
        if version not in self._embedders:
            self._embedders[version] = FileEmbedder(self.reg, version, batch_size=self.batch_size, device=self.device)
        return self._embedders[version]

    def embed_photo(self, data: bytes, suffix: str, version: str) -> np.ndarray:
        """One uploaded photo through ``version``'s input pipeline: ``(1, dim)``; InvalidInput
        naming the reason when it cannot be used (undecodable, no face found)."""
        suffix = suffix if suffix.isalnum() and len(suffix) <= 8 else "img"
        fd, tmp = tempfile.mkstemp(prefix="harmony-upload-", suffix=f".{suffix}")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            out = self.embedder(version).embed([tmp])
        finally:
            Path(tmp).unlink(missing_ok=True)
        if not out.ok.all():
            why = out.unusable[0].reason.replace(tmp, "the upload") if out.unusable else "unreadable"
            raise InvalidInput(f"the uploaded photo cannot be used: {why}",
                               hint="upload a JPEG or PNG photo with one face")
        return out.vectors

    def search_photo(self, data: bytes, suffix: str, k: int, version: str | None = None) -> Answer:
        snap = self.current()
        v = self.resolve(version, snap)
        return snap.search(self.reg, self.embed_photo(data, suffix, v), k, v)[0]
