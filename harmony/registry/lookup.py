"""Name resolution shared by every part of the store: version names and aliases."""

from __future__ import annotations

import duckdb

from harmony.errors import NotFound
from harmony.registry.records import VERSION_COLUMNS, Version, version_from_row

LIST_HINT = "see `harmony registry list`"


def resolve_in(con: duckdb.DuckDBPyConnection, name_or_alias: str) -> str:
    """The ready version a name or alias refers to, else NotFound."""
    row = con.execute("SELECT status FROM versions WHERE name = ?", [name_or_alias]).fetchone()
    if row is not None:
        if row[0] != "ready":
            raise NotFound(f"version '{name_or_alias}' was removed", hint=LIST_HINT)
        return name_or_alias
    row = con.execute("SELECT version FROM aliases WHERE alias = ?", [name_or_alias]).fetchone()
    if row is None:
        raise NotFound(f"no version or alias named '{name_or_alias}'", hint=LIST_HINT)
    return row[0]


def version_in(con: duckdb.DuckDBPyConnection, name_or_alias: str) -> Version:
    """The Version record a name or alias refers to, else NotFound."""
    name = resolve_in(con, name_or_alias)
    row = con.execute(f"SELECT {VERSION_COLUMNS} FROM versions WHERE name = ?", [name]).fetchone()
    return version_from_row(row)
