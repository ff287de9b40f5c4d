"""After the backfill: status, swap, rollback, gc, and repairing a swap or rollback killed midway.

A swap is three commits in a fixed order: (1) the gallery store's ``gallery.json`` pointer (the
moment searches switch index, atomic), (2) the registry's gallery version, (3) the registry's
migration state. A kill between them leaves the store ahead of the registry; :func:`reconcile`
reads the store as the truth and completes the registry, and every command that changes state
calls it first, so re-running the interrupted command (or any other) finishes the job. Rollback
uses the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harmony.errors import InUse, InvalidInput, NotFound
from harmony.operations.galleries import open_gallery, registry_mismatch


def latest_migration(reg: Any, gallery: str) -> Any | None:
    migs = reg.migrations(gallery)
    return migs[-1] if migs else None


def reconcile(reg: Any, gallery: str) -> list[str]:
    """Complete the registry after a swap or rollback killed between its steps; returns what was fixed."""
    record, store = open_gallery(reg, gallery, use_gpu=False)
    active, fixed = store.active_version, []
    mig = latest_migration(reg, gallery)
    if mig is not None and mig.state == "ready" and active == mig.target:
        if record.version != active:
            reg.update_gallery(gallery, version=active)
        reg.update_migration(mig.id, state="swapped")
        fixed.append(f"finished the interrupted swap of migration #{mig.id} to {mig.target}")
    elif mig is not None and mig.state == "swapped" and active == mig.source and store.previous_version == mig.target:
        if record.version != active:
            reg.update_gallery(gallery, version=active)
        reg.update_migration(mig.id, state="rolled_back")
        fixed.append(f"finished the interrupted rollback of migration #{mig.id} to {mig.source}")
    elif record.version != active:
        reg.update_gallery(gallery, version=active)
        fixed.append(f"registry version of gallery {gallery} set to {active}, the version its index serves")
    return fixed


@dataclass(frozen=True)
class SwapOutcome:
    gallery: str
    migration: Any  # the registry row afterwards
    active: str
    previous: str | None
    missing: int  # items without a vector in the now-active index
    action: str  # swapped | rolled_back | cancelled | already
    fixed: tuple[str, ...]


def swap_gallery(reg: Any, gallery: str, *, allow_missing: bool = False) -> SwapOutcome:
    """Make the finished migration's target the gallery's serving version (store, then registry)."""
    from harmony.migration.swap import swap

    fixed = tuple(reconcile(reg, gallery))
    _, store = open_gallery(reg, gallery)
    mig = latest_migration(reg, gallery)
    if mig is None:
        raise NotFound(f"gallery {gallery} has no migration to swap in",
                       hint=f"migrate it first: `harmony migrate gallery --gallery {gallery} --to VERSION`")
    if mig.state == "swapped":
        return SwapOutcome(gallery, mig, store.active_version, store.previous_version,
                           len(store.items()) - store.n_vectors(store.active_version), "already", fixed)
    if mig.state in ("planned", "backfilling"):
        raise InvalidInput(f"migration #{mig.id} of gallery {gallery} to {mig.target} is {mig.state}: its backfill "
                           "has not finished",
                           hint=f"re-run `harmony migrate gallery --gallery {gallery} --to {mig.target} --swap` "
                                "(it resumes where it stopped)")
    if mig.state != "ready":
        raise InvalidInput(f"the newest migration of gallery {gallery} (#{mig.id}) is {mig.state}: nothing to swap",
                           hint=f"plan a new one: `harmony migrate gallery --gallery {gallery} --to VERSION`")
    r = swap(store, mig.target, allow_missing=allow_missing)  # 1. searches switch here
    reg.update_gallery(gallery, version=mig.target)  # 2.
    mig = reg.update_migration(mig.id, state="swapped")  # 3.
    return SwapOutcome(gallery, mig, r.active, r.previous, r.missing, "swapped", fixed)


def rollback_gallery(reg: Any, gallery: str) -> SwapOutcome:
    """Undo the newest migration: a swapped one returns to the old index (while it exists), a
    finished but unswapped one is marked rolled back (its index stays until gc), and one still
    backfilling is cancelled (checkpoints deleted, recorded as failed)."""
    from harmony.migration.backfill import discard_backfill
    from harmony.migration.swap import rollback

    fixed = tuple(reconcile(reg, gallery))
    _, store = open_gallery(reg, gallery)
    mig = latest_migration(reg, gallery)
    if fixed and mig is not None and mig.state == "rolled_back":  # this was the interrupted rollback
        active = store.active_version
        return SwapOutcome(gallery, mig, active, store.previous_version,
                           len(store.items()) - store.n_vectors(active), "rolled_back", fixed)
    if mig is None or mig.state in ("rolled_back", "failed"):
        what = "has no migration" if mig is None else f"'s newest migration (#{mig.id}) is already {mig.state}"
        raise NotFound(f"gallery {gallery} {what}: nothing to roll back", hint="see `harmony migrate status`")
    if mig.state == "swapped":
        r = rollback(store)  # NotFound once gc deleted the old index
        reg.update_gallery(gallery, version=r.active)
        mig = reg.update_migration(mig.id, state="rolled_back")
        return SwapOutcome(gallery, mig, r.active, r.previous, r.missing, "rolled_back", fixed)
    active = store.active_version
    missing = len(store.items()) - store.n_vectors(active)
    if mig.state == "ready":
        mig = reg.update_migration(mig.id, state="rolled_back")
        return SwapOutcome(gallery, mig, active, store.previous_version, missing, "rolled_back", fixed)
    discard_backfill(store, mig.target)  # Busy while a backfill process is running
    mig = reg.update_migration(mig.id, state="failed", counts={**mig.counts, "cancelled": True})
    return SwapOutcome(gallery, mig, active, store.previous_version, missing, "cancelled", fixed)


def gc_gallery(reg: Any, gallery: str, version: str | None = None) -> list[str]:
    """Delete old indexes: ``version``, or every index neither served nor part of a migration in
    flight (the previous one included: rollback is impossible afterwards). Returns what went."""
    from harmony.migration.backfill import discard_backfill

    reconcile(reg, gallery)
    _, store = open_gallery(reg, gallery, use_gpu=False)
    mig = reg.active_migration(gallery)
    keep = {store.active_version} | ({mig.source, mig.target} if mig is not None else set())
    if version is not None:
        if version in keep:
            raise InUse(f"the {version} index of gallery {gallery} is "
                        + ("served" if version == store.active_version else f"part of migration #{mig.id}"),
                        hint="swap, finish or roll back first")
        if not store.has_index(version):
            raise NotFound(f"gallery {gallery} has no {version} index", hint=f"it holds {', '.join(store.versions())}")
        drop = [version]
    else:
        drop = [v for v in store.versions() if v not in keep]
        mdir = store.path / "migrations"
        for d in sorted(mdir.iterdir()) if mdir.is_dir() else []:
            if d.name not in keep:  # checkpoints of a backfill nobody will resume
                discard_backfill(store, d.name)
    for v in drop:
        store.drop_index(v)
    return drop


@dataclass(frozen=True)
class StatusView:
    gallery: str
    far: float
    registry_version: str
    active: str
    previous: str | None
    versions: tuple[str, ...]  # indexes held
    n_items: int
    migrations: tuple[Any, ...]  # registry rows, oldest first
    backfill: Any | None  # migration.backfill.BackfillStatus of the newest migration's target
    warnings: tuple[str, ...]

    @property
    def latest(self) -> Any | None:
        return self.migrations[-1] if self.migrations else None

    @property
    def can_rollback(self) -> bool:
        m = self.latest
        return m is not None and (m.state in ("planned", "backfilling", "ready")
                                  or (m.state == "swapped" and self.previous is not None and self.previous in self.versions))


def migration_status(reg: Any, gallery: str) -> StatusView:
    """Where the gallery's migrations stand, from the registry and (for the cursor) the store."""
    from harmony.migration.backfill import backfill_status

    record, store = open_gallery(reg, gallery, use_gpu=False)
    migs = tuple(reg.migrations(gallery))
    bf = backfill_status(store, migs[-1].target) if migs else None
    warn = registry_mismatch(record, store)
    return StatusView(gallery, record.far, record.version, store.active_version, store.previous_version,
                      store.versions(), len(store.items()), migs, bf, (warn,) if warn else ())
