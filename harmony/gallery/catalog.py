"""Galleries as the user sees them: a registry row (version, operating FAR, codec) plus a store folder.

The folder lives at ``<registry root>/galleries/<name>/`` (recorded relative to the root, so a
registry folder can move). The store's active version is the truth about what a search uses; the
registry row mirrors it (they differ only between the steps of a killed swap or rollback, which
re-running that command repairs: harmony.migration.states.reconcile).

Here: open, build, add, remove, view. Searching lives in harmony.migration.search, because a
search with another version than the gallery's needs the compatibility gate.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from harmony.errors import AlreadyExists, InvalidInput, NotFound
from harmony.gallery.items import ItemSpec, folder_items, path_items
from harmony.models.pipeline import FileEmbedder, check_dim
from harmony.progress import ProgressFn

if TYPE_CHECKING:
    from harmony.gallery.store import GalleryInfo, GalleryStore
    from harmony.registry import Registry
    from harmony.registry.records import Gallery, Migration

log = logging.getLogger(__name__)

GALLERIES_DIR = "galleries"


# -- locating ---------------------------------------------------------------------------------

def store_path(reg: Registry, record: Gallery) -> Path:
    """The folder of a registered gallery (its recorded path, relative to the registry root)."""
    p = Path(record.path)
    return p if p.is_absolute() else reg.root / p


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


def build_gallery(reg: Registry, name: str, version: str, data: Path | str, *, codec: str = "flat", far: float = 1e-3,
                  nlist: int | None = None, batch_size: int = 256, device: str | None = None,
                  progress: ProgressFn | None = None, use_gpu: bool | None = None) -> BuildResult:
    """Embed every image of ``data`` (``ROOT/<identity>/<image>``) with ``version``, index it and
    register the gallery. The store is built in a temp folder and moved into place before the
    registry row commits, so a killed build leaves nothing a later build trips over."""
    from harmony.gallery import index as fx
    from harmony.gallery.store import GalleryStore
    from harmony.registry.records import check_name

    t0 = time.perf_counter()
    check_name(name, "gallery")
    if codec not in fx.CODECS:
        raise InvalidInput(f"unknown codec {codec!r}", hint=f"use one of {', '.join(fx.CODECS)}")
    if not 0.0 < float(far) <= 1.0:
        raise InvalidInput(f"--far must be in (0, 1], got {far}", hint="e.g. --far 1e-3")
    v = reg.get_version(version)
    if any(g.name == name for g in reg.list_galleries()):
        raise AlreadyExists(f"gallery '{name}' already exists", hint="choose another --name, or add items to it")
    items = folder_items(data)
    emb = FileEmbedder(reg, v.name, batch_size=batch_size, device=device)
    vecs, ok = emb([it.source for it in items], progress=progress)
    embed_s = time.perf_counter() - t0
    kept = [it for it, good in zip(items, ok) if good]
    if not kept:
        raise InvalidInput(f"none of the {len(items)} images in {data} could be read", hint="check the image files")
    root = reg.root / GALLERIES_DIR
    final = root / name
    tmp = root / f".{name}.building-{uuid.uuid4().hex[:8]}"
    t1 = time.perf_counter()
    try:
        store = GalleryStore.create(tmp, v.dim, v.name, codec, nlist=nlist, use_gpu=use_gpu)
        store.add_items([it.item_id for it in kept], [it.source for it in kept], [it.label for it in kept], vecs, v.name)
        if final.exists():  # no registry row (checked above): the leftover of a build killed before registering
            log.warning("removing %s, left by an interrupted build", final)
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    index_s = time.perf_counter() - t1
    try:
        reg.add_gallery(name, version=v.name, path=f"{GALLERIES_DIR}/{name}", far=far, codec=codec,
                        meta={"data": str(Path(data).absolute()), "nlist": nlist})
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    unreadable = tuple(it.source for it, good in zip(items, ok) if not good)
    return BuildResult(name, v.name, str(final), codec, float(far), len(kept), len({it.label for it in kept}),
                       unreadable, embed_s, index_s, time.perf_counter() - t0)


@dataclass(frozen=True)
class AddResult:
    gallery: str
    version: str
    added: int
    replaced: int
    unreadable: tuple[str, ...]


def add_to_gallery(reg: Registry, name: str, paths: Sequence[Path | str], *, identity: str | None = None,
                   batch_size: int = 256, device: str | None = None, progress: ProgressFn | None = None) -> AddResult:
    """Embed image files/folders with the gallery's serving version and add (or replace) them.

    During a migration the backfill picks them up: it re-embeds whatever changed behind its cursor.
    """
    _, store = open_gallery(reg, name)
    items = path_items(paths, identity)
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


# -- reading ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class GalleryView:
    record: Gallery  # registry row
    info: GalleryInfo | None  # None: folder missing
    migration: Migration | None  # the newest migration row
    warnings: tuple[str, ...]


def gallery_view(reg: Registry, name: str) -> GalleryView:
    record = reg.get_gallery(name)
    migs = reg.migrations(name)
    try:
        _, store = open_gallery(reg, name, use_gpu=False)
    except NotFound as e:
        return GalleryView(record, None, migs[-1] if migs else None, (e.message,))
    warn = registry_mismatch(record, store)
    return GalleryView(record, store.info(), migs[-1] if migs else None, (warn,) if warn else ())


def list_gallery_views(reg: Registry) -> list[GalleryView]:
    return [gallery_view(reg, g.name) for g in reg.list_galleries()]


def items_of(store: GalleryStore, limit: int | None = None) -> list[ItemSpec]:
    t = store.items()
    n = len(t) if limit is None else min(limit, len(t))
    return [ItemSpec(str(t.item_ids[i]), str(t.sources[i]), str(t.labels[i])) for i in range(n)]
