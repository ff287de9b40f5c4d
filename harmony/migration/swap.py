"""Finish a migration in the store: swap the active index, roll back while the old one exists.

Each step is one atomic replacement of the gallery's ``gallery.json`` pointer (store.set_active),
so a search sees either the old index or the new one, never a mix.
"""

from __future__ import annotations

from dataclasses import dataclass

from harmony.errors import InvalidInput, NotFound
from harmony.gallery.store import GalleryStore
from harmony.migration.checkpoint import BackfillDir


@dataclass(frozen=True)
class SwapResult:
    gallery: str
    active: str
    previous: str | None
    missing: int  # items without a vector in the now-active index (unreadable sources, late adds)


def swap(store: GalleryStore, target_version: str, *, allow_missing: bool = False) -> SwapResult:
    """Make ``target_version`` the active index; the old one stays for :func:`rollback`."""
    with store.write_lock():
        if BackfillDir(store.path, target_version).read_cursor() is not None:
            raise InvalidInput(f"the backfill of gallery {store.path.name} to {target_version} is not finished",
                               hint="re-run the migration to finish it (it resumes where it stopped)")
        if not store.has_index(target_version):
            raise NotFound(f"gallery {store.path.name} has no {target_version} index",
                           hint=f"backfill it first (harmony migrate gallery --to {target_version})")
        missing = _missing(store, target_version)
        if store.active_version == target_version:
            return SwapResult(store.path.name, target_version, store.previous_version, missing)
        if missing and not allow_missing:
            raise InvalidInput(
                f"{missing} item(s) of gallery {store.path.name} have no {target_version} vector "
                "(their sources were unreadable, or they were added during the backfill)",
                hint="restore or remove them and re-run the backfill, or swap with --allow-missing")
        old = store.active_version
        store.set_active(target_version, previous=old)
        return SwapResult(store.path.name, target_version, old, missing)


def rollback(store: GalleryStore) -> SwapResult:
    """Point the gallery back at the previous index (possible until gc deleted it: lifecycle.gc_gallery)."""
    with store.write_lock():
        prev, cur = store.previous_version, store.active_version
        if prev is None or not store.has_index(prev):
            raise NotFound(f"gallery {store.path.name} has no previous index to roll back to",
                           hint="the old index was garbage-collected; migrate back instead")
        store.set_active(prev, previous=cur)
        return SwapResult(store.path.name, prev, cur, _missing(store, prev))


def _missing(store: GalleryStore, version: str) -> int:
    return len(store.items()) - store.n_vectors(version)
