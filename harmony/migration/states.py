"""The migration state machine: the states, the moves allowed between them, and ``reconcile``.

DESIGN section 6: planned -> backfilling -> ready -> swapped (-> rolled_back), and failed from
any state that is not finished. This module is the only one that knows the names and the table;
the registry persists rows and the gallery store stores indexes, neither decides a move. A move is
race-safe: :func:`advance` hands the registry the states the row may move *from* (computed from
:data:`TRANSITIONS`), and the registry's UPDATE matches only a row still in one of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from harmony.errors import InvalidInput
from harmony.registry.galleries import StateConflict

if TYPE_CHECKING:
    from harmony.registry import Registry
    from harmony.registry.records import Migration

PLANNED, BACKFILLING, READY, SWAPPED, ROLLED_BACK, FAILED = (
    "planned", "backfilling", "ready", "swapped", "rolled_back", "failed")

TRANSITIONS: dict[str, tuple[str, ...]] = {
    PLANNED: (BACKFILLING, READY, FAILED),
    BACKFILLING: (BACKFILLING, READY, FAILED),  # backfilling -> backfilling: a cursor update
    READY: (SWAPPED, ROLLED_BACK, FAILED),
    SWAPPED: (ROLLED_BACK, FAILED),
    ROLLED_BACK: (),
    FAILED: (),
}
STATES = tuple(TRANSITIONS)
ACTIVE_STATES = (PLANNED, BACKFILLING, READY)  # in flight: one per gallery at a time
TERMINAL_STATES = tuple(s for s, nxt in TRANSITIONS.items() if not nxt)  # cursor and counts are final


def sources_of(state: str) -> tuple[str, ...]:
    """The states a migration may move to ``state`` from."""
    if state not in TRANSITIONS:
        raise InvalidInput(f"unknown migration state {state!r}", hint=f"use one of {', '.join(STATES)}")
    return tuple(s for s, nxt in TRANSITIONS.items() if state in nxt)


def begin(reg: Registry, gallery: str, source: str, target: str, plan: Mapping[str, Any]) -> Migration:
    """Record a new migration, planned; InUse while another one of the gallery is in flight."""
    return reg.add_migration(gallery, source, target, plan, state=PLANNED, busy=ACTIVE_STATES)


def advance(reg: Registry, mid: int, state: str | None = None, *, cursor: int | None = None,
            counts: Mapping[str, Any] | None = None, report: Mapping[str, Any] | None = None) -> Migration:
    """Move migration ``mid`` to ``state`` and/or store its cursor, counts, report (replaced).

    InvalidInput for a move the table forbids, or a cursor/counts change of a finished migration.
    """
    if state is not None:
        prior: tuple[str, ...] | None = sources_of(state)
    elif cursor is not None or counts is not None:
        prior = tuple(s for s in STATES if s not in TERMINAL_STATES)
    else:
        prior = None  # only the report: allowed in every state
    try:
        return reg.update_migration(mid, state=state, cursor=cursor, counts=counts, report=report, from_states=prior)
    except StateConflict as e:
        current = e.state
    if state is None:
        raise InvalidInput(f"migration #{mid} is {current}; its cursor and counts are final",
                           hint="plan a new migration")
    allowed = ", ".join(TRANSITIONS[current]) or "nothing (it is finished)"
    raise InvalidInput(f"migration #{mid} cannot go from {current} to {state}",
                       hint=f"from {current} it can go to {allowed}")


def active_migration(reg: Registry, gallery: str) -> Migration | None:
    """The newest migration of ``gallery`` still in flight (planned, backfilling or ready)."""
    migs = reg.migrations(gallery, states=ACTIVE_STATES)
    return migs[-1] if migs else None


def latest_migration(reg: Registry, gallery: str) -> Migration | None:
    migs = reg.migrations(gallery)
    return migs[-1] if migs else None


def is_complete(mig: Migration) -> bool:
    """The backfill finished (the target index is installed, swapped in or not)."""
    return mig.state in (READY, SWAPPED)


def reconcile(reg: Registry, gallery: str) -> list[str]:
    """Complete the registry after a swap or rollback killed between its store and registry steps;
    returns what was fixed. The store's active index is the truth (see lifecycle.py)."""
    from harmony.gallery.catalog import open_gallery

    record, store = open_gallery(reg, gallery, use_gpu=False)
    active, fixed = store.active_version, []
    mig = latest_migration(reg, gallery)
    if mig is not None and mig.state == READY and active == mig.target:
        if record.version != active:
            reg.update_gallery(gallery, version=active)
        advance(reg, mig.id, SWAPPED)
        fixed.append(f"finished the interrupted swap of migration #{mig.id} to {mig.target}")
    elif mig is not None and mig.state == SWAPPED and active == mig.source and store.previous_version == mig.target:
        if record.version != active:
            reg.update_gallery(gallery, version=active)
        advance(reg, mig.id, ROLLED_BACK)
        fixed.append(f"finished the interrupted rollback of migration #{mig.id} to {mig.source}")
    elif record.version != active:
        reg.update_gallery(gallery, version=active)
        fixed.append(f"registry version of gallery {gallery} set to {active}, the version its index serves")
    return fixed
