"""After the backfill: status, swap, rollback, gc, and repairing a swap or rollback killed midway.

A swap is three commits in a fixed order: (1) the gallery store's ``gallery.json`` pointer (the
moment searches switch index, atomic), (2) the registry's gallery version, (3) the registry's
migration state. A kill between them leaves the store ahead of the registry; :func:`reconcile`
reads the store as the truth and completes the registry, and every command that changes state
calls it first, so re-running the interrupted command (or any other) finishes the job. Rollback
uses the same order. Every registry state change goes through states.advance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harmony.errors import Incompatible, InUse, InvalidInput, NotFound
from harmony.gallery.catalog import integrity_warnings, open_gallery, registry_mismatch
from harmony.migration import states
from harmony.migration.backfill import BackfillStatus, backfill_status, discard_backfill
from harmony.migration.checkpoint import checkpoint_targets
from harmony.migration.states import (BACKFILLING, FAILED, PLANNED, READY, ROLLED_BACK, SWAPPED, advance,
                                      latest_migration, reconcile)
from harmony.migration.swap import rollback, swap

if TYPE_CHECKING:
    from harmony.registry import Registry
    from harmony.registry.records import Migration


@dataclass(frozen=True)
class SwapOutcome:
    gallery: str
    migration: Migration  # the registry row afterwards
    active: str
    previous: str | None
    missing: int  # items without a vector in the now-active index
    action: str  # swapped | rolled_back | cancelled | already
    fixed: tuple[str, ...]


def check_flip_rate(mig: Migration, max_flip_rate: float) -> None:
    """Refuse when the migration report's negative flip rate after the swap (target probes on the
    target gallery, of the queries the source got right) exceeds ``max_flip_rate``."""
    from harmony.metrics.flips import check_rate

    max_flip_rate = check_rate(max_flip_rate, "--max-flip-rate")
    flips = (mig.report or {}).get("flips")
    if not flips:
        why = (mig.report or {}).get("flips_error", "the report predates flip measurement")
        raise InvalidInput(f"migration #{mig.id}'s report has no negative flip rate to compare ({why})",
                           hint="swap without --max-flip-rate, or roll back and migrate again to measure it")
    f = flips["new_flips"]
    if f["rate"] > max_flip_rate:
        raise Incompatible(
            f"migration #{mig.id} to {mig.target}: the report's negative flip rate after the swap is {f['rate']:.2%} "
            f"({f['n_flips']} of the report's {flips['n_queries']} queries: right with {mig.source} -> {mig.source}, "
            f"wrong with {f['probe']} -> {f['gallery']}), above --max-flip-rate {max_flip_rate:g}; nothing swapped",
            hint="raise --max-flip-rate, or roll back (`harmony migrate rollback`) and migrate to a better version")


def swap_gallery(reg: Registry, gallery: str, *, allow_missing: bool = False,
                 max_flip_rate: float | None = None) -> SwapOutcome:
    """Make the finished migration's target the gallery's serving version (store, then registry).

    ``max_flip_rate``: refuse (Incompatible, nothing changed) when the report's negative flip rate
    after the swap exceeds it (:func:`check_flip_rate`)."""
    fixed = tuple(reconcile(reg, gallery))
    _, store = open_gallery(reg, gallery)
    mig = latest_migration(reg, gallery)
    if mig is None:
        raise NotFound(f"gallery {gallery} has no migration to swap in",
                       hint=f"migrate it first: `harmony migrate gallery --gallery {gallery} --to VERSION`")
    if mig.state == SWAPPED:
        return SwapOutcome(gallery, mig, store.active_version, store.previous_version,
                           len(store.items()) - store.n_vectors(store.active_version), "already", fixed)
    if mig.state in (PLANNED, BACKFILLING):
        raise InvalidInput(f"migration #{mig.id} of gallery {gallery} to {mig.target} is {mig.state}: its backfill "
                           "has not finished",
                           hint=f"re-run `harmony migrate gallery --gallery {gallery} --to {mig.target} --swap` "
                                "(it resumes where it stopped)")
    if mig.state != READY:
        raise InvalidInput(f"the newest migration of gallery {gallery} (#{mig.id}) is {mig.state}: nothing to swap",
                           hint=f"plan a new one: `harmony migrate gallery --gallery {gallery} --to VERSION`")
    if max_flip_rate is not None:
        check_flip_rate(mig, max_flip_rate)
    r = swap(store, mig.target, allow_missing=allow_missing)  # 1. searches switch here
    reg.update_gallery(gallery, version=mig.target)  # 2.
    mig = advance(reg, mig.id, SWAPPED)  # 3.
    return SwapOutcome(gallery, mig, r.active, r.previous, r.missing, "swapped", fixed)


def rollback_gallery(reg: Registry, gallery: str) -> SwapOutcome:
    """Undo the newest migration: a swapped one returns to the old index (while it exists), a
    finished but unswapped one is marked rolled back (its index stays until gc), and one still
    backfilling is cancelled (checkpoints deleted, recorded as failed)."""
    fixed = tuple(reconcile(reg, gallery))
    _, store = open_gallery(reg, gallery)
    mig = latest_migration(reg, gallery)
    if fixed and mig is not None and mig.state == ROLLED_BACK:  # this was the interrupted rollback
        active = store.active_version
        return SwapOutcome(gallery, mig, active, store.previous_version,
                           len(store.items()) - store.n_vectors(active), "rolled_back", fixed)
    if mig is None or mig.state in (ROLLED_BACK, FAILED):
        what = "has no migration" if mig is None else f"'s newest migration (#{mig.id}) is already {mig.state}"
        raise NotFound(f"gallery {gallery} {what}: nothing to roll back", hint="see `harmony migrate status`")
    if mig.state == SWAPPED:
        r = rollback(store)  # NotFound once gc deleted the old index
        reg.update_gallery(gallery, version=r.active)
        mig = advance(reg, mig.id, ROLLED_BACK)
        return SwapOutcome(gallery, mig, r.active, r.previous, r.missing, "rolled_back", fixed)
    active = store.active_version
    missing = len(store.items()) - store.n_vectors(active)
    if mig.state == READY:
        mig = advance(reg, mig.id, ROLLED_BACK)
        return SwapOutcome(gallery, mig, active, store.previous_version, missing, "rolled_back", fixed)
    discard_backfill(store, mig.target)  # Busy while a backfill process is running
    mig = advance(reg, mig.id, FAILED, counts={**mig.counts, "cancelled": True})
    return SwapOutcome(gallery, mig, active, store.previous_version, missing, "cancelled", fixed)


def gc_gallery(reg: Registry, gallery: str, version: str | None = None) -> list[str]:
    """Delete old indexes: ``version``, or every index neither served nor part of a migration in
    flight (the previous one included: rollback is impossible afterwards), and the checkpoints of
    backfills nobody will resume. The one gc rule. Returns the indexes deleted."""
    reconcile(reg, gallery)
    _, store = open_gallery(reg, gallery, use_gpu=False)
    mig = states.active_migration(reg, gallery)
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
        for target in checkpoint_targets(store.path):
            if target not in keep:  # checkpoints of a backfill nobody will resume
                discard_backfill(store, target)
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
    migrations: tuple[Migration, ...]  # registry rows, oldest first
    backfill: BackfillStatus | None  # of the newest migration's target
    warnings: tuple[str, ...]

    @property
    def latest(self) -> Migration | None:
        return self.migrations[-1] if self.migrations else None

    @property
    def can_rollback(self) -> bool:
        m = self.latest
        return m is not None and (m.state in states.ACTIVE_STATES
                                  or (m.state == SWAPPED and self.previous is not None and self.previous in self.versions))


def migration_status(reg: Registry, gallery: str) -> StatusView:
    """Where the gallery's migrations stand, from the registry and (for the cursor) the store."""
    record, store = open_gallery(reg, gallery, use_gpu=False)
    migs = tuple(reg.migrations(gallery))
    bf = backfill_status(store, migs[-1].target) if migs else None
    warn = registry_mismatch(record, store)
    return StatusView(gallery, record.far, record.version, store.active_version, store.previous_version,
                      store.versions(), len(store.items()), migs, bf,
                      ((warn,) if warn else ()) + integrity_warnings(store))
