"""Transform edges: learned maps between two versions' embedding spaces (``harmony train transform``).

A row names the edge (``from_version`` -> ``to_version``), the dims h reads and writes, its
artifact under ``transforms/<name>/`` (sha256 and size, like a version's) and the table measured
when it was trained. Edges are immutable like versions: removing one marks the row deleted and
deletes the file, and the name is never reused. Transform names share one namespace with version
names and aliases, so ``harmony registry show NAME`` always means one thing.
"""

from __future__ import annotations

import duckdb

from harmony.errors import AlreadyExists, NotFound
from harmony.registry.records import TRANSFORM_COLUMNS, TransformEdge, transform_from_row

FOLDER = "transforms"  # under the registry root, beside artifacts/
LIST_HINT = "see `harmony registry transforms`"


def check_free(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """AlreadyExists when ``name`` is a transform (ready or removed), a version or an alias."""
    row = con.execute("SELECT status FROM transforms WHERE name = ?", [name]).fetchone()
    if row is not None:
        was = " (removed; names are never reused)" if row[0] != "ready" else ""
        raise AlreadyExists(f"transform '{name}' already exists{was}", hint="choose another --name")
    if con.execute("SELECT 1 FROM versions WHERE name = ?", [name]).fetchone():
        raise AlreadyExists(f"'{name}' is already a version", hint="choose another --name")
    if con.execute("SELECT 1 FROM aliases WHERE alias = ?", [name]).fetchone():
        raise AlreadyExists(f"'{name}' is already an alias", hint="choose another --name")


def is_transform(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return con.execute("SELECT 1 FROM transforms WHERE name = ?", [name]).fetchone() is not None


def get_transform(con: duckdb.DuckDBPyConnection, name: str) -> TransformEdge:
    row = con.execute(f"SELECT {TRANSFORM_COLUMNS} FROM transforms WHERE name = ?", [name]).fetchone()
    if row is None:
        raise NotFound(f"no transform named '{name}'", hint=LIST_HINT)
    t = transform_from_row(row)
    if t.status != "ready":
        raise NotFound(f"transform '{name}' was removed", hint=LIST_HINT)
    return t


def list_transforms(con: duckdb.DuckDBPyConnection, from_version: str | None, to_version: str | None,
                    include_deleted: bool) -> list[TransformEdge]:
    where, params = [], []
    if not include_deleted:
        where.append("status = 'ready'")
    if from_version is not None:
        where.append("from_version = ?")
        params.append(from_version)
    if to_version is not None:
        where.append("to_version = ?")
        params.append(to_version)
    sql = f"SELECT {TRANSFORM_COLUMNS} FROM transforms" + (" WHERE " + " AND ".join(where) if where else "")
    return [transform_from_row(r) for r in con.execute(sql + " ORDER BY created, name", params).fetchall()]


def users_of_version(con: duckdb.DuckDBPyConnection, version: str) -> list[str]:
    """Ready transforms that read or write ``version`` (they keep it from being removed)."""
    rows = con.execute("SELECT name FROM transforms WHERE status = 'ready' AND (from_version = ? OR to_version = ?) "
                       "ORDER BY name", [version, version]).fetchall()
    return [r[0] for r in rows]
