"""Gallery and migration rows: the registry side of DESIGN section 6.

The registry records which version serves a gallery and where a migration stands; it only
persists the rows. Which state may follow which is ``harmony.migration.states``' business: it
passes the states a row may move from (``from_states``, ``busy``) and the UPDATE or INSERT checks
them in the same transaction, so two racing processes cannot both move one migration.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any, Mapping, Sequence

import duckdb

from harmony.errors import AlreadyExists, InUse, InvalidInput, NotFound
from harmony.metrics.fars import check_far
from harmony.registry.lookup import resolve_in
from harmony.registry.records import (
    GALLERY_COLUMNS,
    MIGRATION_COLUMNS,
    Gallery,
    Migration,
    check_name,
    gallery_from_row,
    migration_from_row,
    to_json,
)
from harmony.registry.schema import utcnow

GALLERY_FIELDS = ("version", "path", "codec", "far", "meta")


class StateConflict(InvalidInput):
    """A migration row was not in one of the states the caller may move it from; ``state`` is
    the one it is in (nothing was written)."""

    code = "state_conflict"

    def __init__(self, mid: int, state: str, from_states: Sequence[str]):
        super().__init__(f"migration #{mid} is {state}, not one of {', '.join(from_states) or 'nothing'}",
                         hint="re-read the migration and decide again")
        self.mid, self.state = mid, state


def _in(states: Sequence[str]) -> tuple[str, list[str]]:
    """A SQL ``IN (?, ...)`` list and its parameters (never empty: an empty list matches nothing)."""
    states = list(states)
    return ("(" + ", ".join("?" * len(states)) + ")", states) if states else ("(NULL)", [])


def _far(far: Any) -> float:
    return check_far(far, "gallery FAR")


def _codec(codec: Any) -> str:
    if not isinstance(codec, str) or not codec:
        raise InvalidInput(f"gallery codec must be a non-empty string, got {codec!r}", hint="e.g. codec='flat'")
    return codec


def get_gallery(con: duckdb.DuckDBPyConnection, name: str) -> Gallery:
    row = con.execute(f"SELECT {GALLERY_COLUMNS} FROM galleries WHERE name = ?", [name]).fetchone()
    if row is None:
        raise NotFound(f"no gallery named '{name}'", hint="see `harmony gallery list`")
    return gallery_from_row(row)


def list_galleries(con: duckdb.DuckDBPyConnection) -> list[Gallery]:
    rows = con.execute(f"SELECT {GALLERY_COLUMNS} FROM galleries ORDER BY name").fetchall()
    return [gallery_from_row(r) for r in rows]


def add_gallery(con: duckdb.DuckDBPyConnection, name: str, version: str, path: Path | str, far: float,
                codec: str, meta: Mapping[str, Any] | None) -> Gallery:
    check_name(name, "gallery")
    if con.execute("SELECT 1 FROM galleries WHERE name = ?", [name]).fetchone():
        raise AlreadyExists(f"gallery '{name}' already exists", hint="choose another gallery name")
    now = utcnow()
    con.execute(f"INSERT INTO galleries ({GALLERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [name, resolve_in(con, version), str(path), _far(far), _codec(codec), to_json(meta), now, now])
    return get_gallery(con, name)


def update_gallery(con: duckdb.DuckDBPyConnection, name: str, fields: Mapping[str, Any]) -> Gallery:
    """Change some of version, path, codec, far, meta (meta is replaced, not merged)."""
    unknown = sorted(set(fields) - set(GALLERY_FIELDS))
    if unknown:
        raise InvalidInput(f"cannot update gallery field(s) {', '.join(unknown)}",
                           hint=f"updatable fields: {', '.join(GALLERY_FIELDS)}")
    get_gallery(con, name)
    checks = {"version": lambda v: resolve_in(con, v), "path": str, "codec": _codec, "far": _far, "meta": to_json}
    for key, value in fields.items():
        con.execute(f"UPDATE galleries SET {key} = ?, updated = ? WHERE name = ?", [checks[key](value), utcnow(), name])
    return get_gallery(con, name)


def remove_gallery(con: duckdb.DuckDBPyConnection, name: str, busy: Sequence[str]) -> None:
    """Delete a gallery's row and its migration history; refused while one is in a ``busy`` state."""
    get_gallery(con, name)
    active = newest_in(con, name, busy)
    if active is not None:
        raise InUse(f"gallery '{name}' has migration #{active.id} in state {active.state}",
                    hint="finish or roll back the migration first")
    con.execute("DELETE FROM migrations WHERE gallery = ?", [name])
    con.execute("DELETE FROM galleries WHERE name = ?", [name])


def get_migration(con: duckdb.DuckDBPyConnection, mid: int) -> Migration:
    row = con.execute(f"SELECT {MIGRATION_COLUMNS} FROM migrations WHERE id = ?", [int(mid)]).fetchone()
    if row is None:
        raise NotFound(f"no migration #{mid}", hint="see `harmony migrate status`")
    return migration_from_row(row)


def migrations(con: duckdb.DuckDBPyConnection, gallery: str | None,
               states: Sequence[str] | None = None) -> list[Migration]:
    """Migration rows, oldest first: of one gallery (or all), in one of ``states`` (or any)."""
    where, params = (["gallery = ?"], [gallery]) if gallery is not None else ([], [])
    if states is not None:
        sql, values = _in(states)
        where.append(f"state IN {sql}")
        params += values
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = con.execute(f"SELECT {MIGRATION_COLUMNS} FROM migrations {clause} ORDER BY id", params).fetchall()
    return [migration_from_row(r) for r in rows]


def newest_in(con: duckdb.DuckDBPyConnection, gallery: str, states: Sequence[str]) -> Migration | None:
    """The newest migration of ``gallery`` in one of ``states`` (None if none)."""
    sql, values = _in(states)
    row = con.execute(f"SELECT {MIGRATION_COLUMNS} FROM migrations WHERE gallery = ? AND state IN {sql} "
                      "ORDER BY id DESC LIMIT 1", [gallery, *values]).fetchone()
    return None if row is None else migration_from_row(row)


def add_migration(con: duckdb.DuckDBPyConnection, gallery: str, source: str, target: str,
                  plan: Mapping[str, Any], state: str, busy: Sequence[str]) -> Migration:
    """Insert a migration row in ``state``; InUse while another of the gallery is in a ``busy`` state."""
    get_gallery(con, gallery)
    src, dst = resolve_in(con, source), resolve_in(con, target)
    if src == dst:
        raise InvalidInput(f"migration source and target are both '{src}'", hint="pass a different --to version")
    active = newest_in(con, gallery, busy)
    if active is not None:
        raise InUse(f"gallery '{gallery}' already has migration #{active.id} in state {active.state}",
                    hint="resume, finish or roll back that migration first")
    now = utcnow()
    row = con.execute(
        "INSERT INTO migrations (gallery, source, target, state, plan, created, updated) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [gallery, src, dst, state, to_json(plan) or "{}", now, now]).fetchone()
    return get_migration(con, int(row[0]))


def update_migration(con: duckdb.DuckDBPyConnection, mid: int, state: str | None, cursor: int | None,
                     counts: Mapping[str, Any] | None, report: Mapping[str, Any] | None,
                     from_states: Sequence[str] | None = None) -> Migration:
    """Store a migration's state, cursor, counts, report (each replaced when given).

    ``from_states``: write only if the row is in one of them (compare-and-set in the UPDATE),
    else raise StateConflict naming the state it is in.
    """
    get_migration(con, mid)
    sets: dict[str, Any] = {}
    if state is not None:
        sets["state"] = state
    if cursor is not None:
        try:
            value = -1 if isinstance(cursor, bool) else operator.index(cursor)
        except TypeError:
            value = -1
        if value < 0:
            raise InvalidInput(f"migration cursor must be a non-negative integer, got {cursor!r}",
                               hint="pass the number of items backfilled so far")
        sets["cursor"] = value
    if counts is not None:
        sets["counts"] = to_json(counts)
    if report is not None:
        sets["report"] = to_json(report)
    sets["updated"] = utcnow()
    assignments = ", ".join(f"{k} = ?" for k in sets)
    where, params = "id = ?", [int(mid)]
    if from_states is not None:
        sql, values = _in(from_states)
        where += f" AND state IN {sql}"
        params += values
    hit = con.execute(f"UPDATE migrations SET {assignments} WHERE {where} RETURNING id",
                      [*sets.values(), *params]).fetchone()
    if hit is None:
        raise StateConflict(int(mid), get_migration(con, mid).state, from_states or ())
    return get_migration(con, mid)
