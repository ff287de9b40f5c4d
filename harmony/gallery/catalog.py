"""Galleries as the user sees them: a registry row (version, operating FAR, codec) plus a store folder.

The folder lives at ``<registry root>/galleries/<name>/`` (recorded relative to the root, so a
registry folder can move). The store's active version is the truth about what a search uses; the
registry row mirrors it (they differ only between the steps of a killed swap or rollback, which
re-running that command repairs: harmony.migration.states.reconcile).

Here: open, build, add, remove items, remove a gallery, view. Searching lives in
harmony.migration.search, because a search with another version than the gallery's needs the
compatibility gate.

Creating and deleting gallery folders happens under one lock, ``<registry>/.galleries.lock``: a build
makes its store in scratch space (harmony.scratch: flock-owned, swept once its owner is dead) and,
under the lock, checks the name is free, renames the folder into place, then inserts the registry
row. A kill before the rename leaves scratch debris; between rename and row, a folder with no row,
which the next build of that name (holding the lock, so no live builder is mid-way) or
``harmony registry verify --repair`` removes. ``remove_gallery`` deletes the row first, then moves
the folder into scratch and deletes it there, so a kill leaves the same two kinds of debris.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from harmony.errors import AlreadyExists, IntegrityError, InUse, InvalidInput, NotFound
from harmony import scratch
from harmony.gallery.items import ItemSpec, folder_items, path_items
from harmony.io import file_lock, fsync_dir
from harmony.models.pipeline import FileEmbedder, check_dim
from harmony.progress import ProgressFn
from harmony.scratch import scratch_dir

if TYPE_CHECKING:
    from harmony.gallery.store import GalleryInfo, GalleryStore
    from harmony.registry import Registry
    from harmony.registry.records import Gallery, Migration

log = logging.getLogger(__name__)

GALLERIES_DIR = "galleries"
CATALOG_LOCK = ".galleries.lock"  # in the registry root: galleries/ holds only gallery folders


# -- locating ---------------------------------------------------------------------------------

def store_path(reg: Registry, record: Gallery) -> Path:
    """The folder of a registered gallery (its recorded path, relative to the registry root)."""
    p = Path(record.path)
    return p if p.is_absolute() else reg.root / p


@contextmanager
def catalog_lock(reg: Registry, timeout: float = 60.0) -> Iterator[None]:
    """The lock under which gallery folders appear and disappear (build's rename + row, rm)."""
    (reg.root / GALLERIES_DIR).mkdir(parents=True, exist_ok=True)
    with file_lock(reg.root / CATALOG_LOCK, timeout, f"the galleries of {reg.root} are being changed by another process",
                   "wait for it to finish and retry"):
        yield


def _registered(reg: Registry, name: str) -> bool:
    try:
        reg.get_gallery(name)
        return True
    except NotFound:
        return False


def _discard_folder(reg: Registry, folder: Path) -> None:
    """Delete a gallery folder crash-safely: one atomic rename into scratch space (so a kill
    midway leaves sweepable scratch, never half a gallery under galleries/), then delete it."""
    with scratch_dir(reg.root, "gallery-rm") as trash:
        try:
            os.rename(folder, trash / "store")
        except FileNotFoundError:
            return
        except OSError:  # another file system (an absolute gallery path): delete in place
            shutil.rmtree(folder, ignore_errors=True)
            return
        fsync_dir(folder.parent)
    # leaving scratch_dir deleted trash with the store in it


def open_gallery(reg: Registry, name: str, use_gpu: bool | None = None) -> tuple[Gallery, GalleryStore]:
    """``(registry Gallery row, GalleryStore)``; NotFound for an unknown name or a missing folder."""
    from harmony.gallery.store import GalleryStore

    record = reg.get_gallery(name)
    path = store_path(reg, record)
    if not path.is_dir():
        raise NotFound(f"gallery {name}'s folder {path} is missing",
                       hint="restore it from a backup, or remove the gallery's registry row and build it again")
    return record, GalleryStore.open(path, use_gpu=use_gpu)


def registry_mismatch(record: Gallery, store: GalleryStore) -> str | None:
    """A warning when the registry row and the store disagree on the serving version."""
    active = store.active_version
    if record.version == active:
        return None
    return (f"the registry says gallery {record.name} serves {record.version}, its index serves {active}: "
            f"a swap or rollback was interrupted; re-run it (harmony migrate swap|rollback --gallery {record.name})")


# -- building and changing --------------------------------------------------------------------

@dataclass(frozen=True)
class BuildResult:
    gallery: str
    version: str
    path: str
    codec: str
    far: float
    n_items: int
    n_identities: int
    unreadable: tuple[str, ...]  # files skipped
    embed_s: float
    index_s: float
    total_s: float
    shards: int = 1
    gpu_mode: str = "shard"
    train_sample: int | None = None  # vectors the codec was trained on (None: flat, nothing to train)


def build_gallery(reg: Registry, name: str, version: str, data: Path | str, *, codec: str = "flat", far: float = 1e-3,
                  nlist: int | None = None, batch_size: int = 256, device: str | None = None,
                  progress: ProgressFn | None = None, use_gpu: bool | None = None, shards: int = 1,
                  gpu_mode: str = "shard") -> BuildResult:
    """Embed every image of ``data`` (``ROOT/<identity>/<image>``) with ``version``, index it and
    register the gallery. The store is built in scratch space and moved into place under the
    catalog lock just before the registry row commits (see the module docstring): of two
    concurrent builds of one name exactly one wins; the other raises AlreadyExists and removes
    only its own scratch folder."""
    from harmony.gallery import index as fx
    from harmony.gallery.store import GalleryStore
    from harmony.registry.records import check_name

    t0 = time.perf_counter()
    check_name(name, "gallery")
    if codec not in fx.CODECS:
        raise InvalidInput(f"unknown codec {codec!r}", hint=f"use one of {', '.join(fx.CODECS)}")
    if not 0.0 < float(far) <= 1.0:
        raise InvalidInput(f"--far must be in (0, 1], got {far}", hint="e.g. --far 1e-3")
    if not 1 <= int(shards) <= fx.MAX_SHARDS:
        raise InvalidInput(f"--shards must be in 1..{fx.MAX_SHARDS}, got {shards}", hint="e.g. --shards 4")
    fx.check_gpu_mode(gpu_mode)
    v = reg.get_version(version)
    reg.require_writable()  # a read-only or full registry fails here, not after embedding the folder
    scratch.sweep(reg.root)  # debris of killed builds goes before new work begins
    (reg.root / GALLERIES_DIR).mkdir(parents=True, exist_ok=True)
    if _registered(reg, name):
        raise AlreadyExists(f"gallery '{name}' already exists", hint="choose another --name, or add items to it")
    items = folder_items(data)
    emb = FileEmbedder(reg, v.name, batch_size=batch_size, device=device)
    vecs, ok = emb([it.source for it in items], progress=progress)
    embed_s = time.perf_counter() - t0
    kept = [it for it, good in zip(items, ok) if good]
    if not kept:
        raise InvalidInput(f"none of the {len(items)} images in {data} could be read", hint="check the image files")
    final = reg.root / GALLERIES_DIR / name
    t1 = time.perf_counter()
    with scratch_dir(reg.root, f"gallery-{name}") as tmp:  # a loser or a failure touches only this
        store = GalleryStore.create(tmp, v.dim, v.name, codec, nlist=nlist, use_gpu=use_gpu, shards=shards,
                                    gpu_mode=gpu_mode)
        store.add_items([it.item_id for it in kept], [it.source for it in kept], [it.label for it in kept], vecs, v.name)
        trained = store.info().trained_on.get(v.name, {}).get("sample")
        with catalog_lock(reg):
            if _registered(reg, name):  # another build won the name while we embedded
                raise AlreadyExists(f"gallery '{name}' already exists (built meanwhile by another process)",
                                    hint="choose another --name, or add items to it")
            if final.exists():  # no row, and no live builder (we hold the lock): a killed build's folder
                log.warning("removing %s, left by an interrupted build", final)
                _discard_folder(reg, final)
            tmp.rename(final)
            index_s = time.perf_counter() - t1
            try:
                reg.add_gallery(name, version=v.name, path=f"{GALLERIES_DIR}/{name}", far=far, codec=codec,
                                meta={"data": str(Path(data).absolute()), "nlist": nlist, "shards": int(shards),
                                      "gpu_mode": gpu_mode})
            except BaseException:
                _discard_folder(reg, final)  # ours: renamed into place by us under the lock, no row
                raise
    unreadable = tuple(it.source for it, good in zip(items, ok) if not good)
    return BuildResult(name, v.name, str(final), codec, float(far), len(kept), len({it.label for it in kept}),
                       unreadable, embed_s, index_s, time.perf_counter() - t0, int(shards), gpu_mode, trained)


@dataclass(frozen=True)
class AddResult:
    gallery: str
    version: str
    added: int
    replaced: int
    unreadable: tuple[str, ...]


def add_to_gallery(reg: Registry, name: str, paths: Sequence[Path | str], *, identity: str | None = None,
                   replace: bool = False, batch_size: int = 256, device: str | None = None,
                   progress: ProgressFn | None = None) -> AddResult:
    """Embed image files/folders with the gallery's serving version and add them.

    Adding a file again (same absolute path) replaces its item. An item id that already belongs
    to a *different* file (``<identity>/<file>`` of another folder) is refused before any
    embedding, unless ``replace``: then that item's content becomes the new file.
    During a migration the backfill picks them up: it re-embeds whatever changed behind its cursor.
    """
    _, store = open_gallery(reg, name)
    reg.require_writable()
    items = path_items(paths, identity)
    if not replace:
        check_collisions(store, items)
    version = store.active_version
    check_dim(reg.get_version(version), store.dim, name)
    emb = FileEmbedder(reg, version, batch_size=batch_size, device=device)
    vecs, ok = emb([it.source for it in items], progress=progress)
    kept = [it for it, good in zip(items, ok) if good]
    added = replaced = 0
    if kept:
        added, replaced = store.add_items([it.item_id for it in kept], [it.source for it in kept],
                                          [it.label for it in kept], vecs, version)
    return AddResult(name, version, added, replaced, tuple(it.source for it, good in zip(items, ok) if not good))


def check_collisions(store: GalleryStore, items: Sequence[ItemSpec]) -> None:
    """InvalidInput when item ids of ``items`` are taken by other source files in the gallery."""
    table = store.items()
    rows = table.row_of_item
    clash = [(it, str(table.sources[rows[it.item_id]])) for it in items
             if it.item_id in rows and str(table.sources[rows[it.item_id]]) != it.source]
    if clash:
        it, old = clash[0]
        raise InvalidInput(f"{len(clash)} item id(s) of gallery {store.path.name} already belong to other files, "
                           f"e.g. {it.item_id!r} is {old}, not {it.source}",
                           hint="pass --replace to replace those items, or give the new images distinct "
                                "<identity>/<file> names (rename the identity folders, or --identity NAME)")


def resolve_item_ids(store: GalleryStore, names: Sequence[str]) -> list[str]:
    """Item ids, or identity folders (``id00007`` or ``id00007/``) standing for every item under them."""
    table = store.items()
    known = table.row_of_item
    out: list[str] = []
    for n in names:
        if n in known:
            out.append(n)
            continue
        prefix = n.rstrip("/") + "/"
        under = [s for s in table.item_ids if s.startswith(prefix)]
        if not under:
            raise NotFound(f"no item {n!r} (nor items under {prefix!r}) in gallery {store.path.name}",
                           hint="item ids are <identity>/<file>; see `harmony gallery info --items`")
        out += under
    return list(dict.fromkeys(out))


def remove_from_gallery(reg: Registry, name: str, item_ids: Sequence[str]) -> list[str]:
    """Remove items (every version's vector); returns the item ids removed."""
    _, store = open_gallery(reg, name)
    ids = resolve_item_ids(store, item_ids)
    store.remove_items(ids)
    return ids


@dataclass(frozen=True)
class RemoveResult:
    gallery: str
    path: str
    folder_removed: bool  # False when the folder was already gone or lies outside <registry>/galleries
    discarded_migrations: tuple[int, ...]  # in-flight migrations dropped by force


def remove_gallery(reg: Registry, name: str, force: bool = False) -> RemoveResult:
    """Delete a gallery: its registry rows (gallery and migrations), then its folder.

    Refused (InUse) while a migration is in flight, unless ``force``, which discards it with the
    gallery. Works on a gallery whose folder is missing or fails its checksums: every registry
    row has a way out. A folder outside ``<registry>/galleries/`` is left where it is."""
    from harmony.migration.states import ACTIVE_STATES  # the one table of which states are in flight

    with catalog_lock(reg):
        record = reg.get_gallery(name)
        in_flight = reg.migrations(name, states=ACTIVE_STATES)
        if in_flight and not force:
            m = in_flight[-1]
            raise InUse(f"gallery '{name}' has migration #{m.id} ({m.source} -> {m.target}) in state {m.state}",
                        hint=f"finish or roll it back (`harmony migrate rollback --gallery {name}`), or "
                             f"`harmony gallery rm {name} --force` to discard it with the gallery")
        reg.remove_gallery(name, busy=() if force else ACTIVE_STATES)  # 1. rows (a kill after: an orphan folder)
        path = store_path(reg, record)
        ours = path.absolute().is_relative_to((reg.root / GALLERIES_DIR).absolute()) and path.is_dir()
        if ours:
            _discard_folder(reg, path)  # 2. folder: one rename into scratch, then deleted there
    return RemoveResult(name, str(path), ours, tuple(m.id for m in in_flight))


# -- reading ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class GalleryView:
    record: Gallery  # registry row
    info: GalleryInfo | None  # None: folder missing
    migration: Migration | None  # the newest migration row
    warnings: tuple[str, ...]


def integrity_warnings(store: GalleryStore) -> tuple[str, ...]:
    """One warning when a file of the gallery is missing or differs from its recorded sha256."""
    from harmony.gallery.checksums import check_folder, fix_hint

    bad = [f"{f} {status} ({detail})" for f, status, detail in check_folder(store.path)
           if status in ("missing", "altered")]
    if not bad:
        return ()
    return (f"gallery {store.path.name} fails its integrity check: {'; '.join(bad)}; searches are refused "
            f"(fix: {fix_hint(store.path)})",)


def gallery_view(reg: Registry, name: str) -> GalleryView:
    record = reg.get_gallery(name)
    migs = reg.migrations(name)
    try:
        _, store = open_gallery(reg, name, use_gpu=False)
    except NotFound as e:
        return GalleryView(record, None, migs[-1] if migs else None, (e.message,))
    except IntegrityError as e:
        return GalleryView(record, None, migs[-1] if migs else None, (str(e),))
    warn = registry_mismatch(record, store)
    warnings = ((warn,) if warn else ()) + integrity_warnings(store)
    return GalleryView(record, store.info(), migs[-1] if migs else None, warnings)


def list_gallery_views(reg: Registry) -> list[GalleryView]:
    return [gallery_view(reg, g.name) for g in reg.list_galleries()]


def items_of(store: GalleryStore, limit: int | None = None) -> list[ItemSpec]:
    t = store.items()
    n = len(t) if limit is None else min(limit, len(t))
    return [ItemSpec(str(t.item_ids[i]), str(t.sources[i]), str(t.labels[i])) for i in range(n)]
