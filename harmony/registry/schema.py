"""The registry's DuckDB schema, its version number, and the in-place upgrades between versions.

Every schema the code ever wrote stays here as DDL (``DDL[n]``), so tests can build an old
database and open it, and ``UPGRADES[n]`` turns schema n into n+1 inside the caller's
transaction. Table and column names are meant to be read by people writing plain SQL.

History:
  1: versions, aliases, evaluations, compatibility, galleries, migrations.
  2: versions.size_bytes and versions.status ('ready' | 'deleted'); migrations.report.
  3: transforms (learned maps between two versions' embedding spaces, `harmony train transform`).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import duckdb

from harmony.errors import Incompatible, InvalidInput

CURRENT = 3

_COMMON = """
CREATE SEQUENCE evaluation_ids START 1;
CREATE SEQUENCE compatibility_ids START 1;
CREATE SEQUENCE migration_ids START 1;
CREATE TABLE schema_info (
    version INTEGER NOT NULL,        -- schema version number (harmony/registry/schema.py)
    updated TIMESTAMP NOT NULL       -- UTC
);
CREATE TABLE aliases (
    alias VARCHAR PRIMARY KEY,
    version VARCHAR NOT NULL,
    updated TIMESTAMP NOT NULL
);
CREATE TABLE evaluations (
    id BIGINT PRIMARY KEY DEFAULT nextval('evaluation_ids'),
    version VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    against VARCHAR,                 -- the other version for cross-version figures, else NULL
    metrics JSON NOT NULL,
    created TIMESTAMP NOT NULL
);
CREATE TABLE compatibility (
    id BIGINT PRIMARY KEY DEFAULT nextval('compatibility_ids'),
    new_version VARCHAR NOT NULL,
    old_version VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    far DOUBLE NOT NULL,
    val_old_old DOUBLE NOT NULL,     -- VAL(old, old)
    val_new_new DOUBLE NOT NULL,     -- VAL(new, new)
    val_new_old DOUBLE NOT NULL,     -- VAL(new -> old): probes new, gallery old
    val_old_new DOUBLE NOT NULL,     -- VAL(old -> new)
    detail JSON,                     -- thresholds and any other figures measured with the table
    compatible BOOLEAN NOT NULL,
    created TIMESTAMP NOT NULL
);
CREATE TABLE galleries (
    name VARCHAR PRIMARY KEY,
    version VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    far DOUBLE NOT NULL,
    codec VARCHAR NOT NULL,
    meta JSON,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL
);
"""

DDL: dict[int, str] = {
    1: _COMMON + """
CREATE TABLE versions (
    name VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,
    backbone VARCHAR NOT NULL,
    dim INTEGER NOT NULL,
    recipe VARCHAR NOT NULL,
    parent VARCHAR,
    artifact VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    metrics JSON,
    meta JSON,
    created TIMESTAMP NOT NULL,
    created_by VARCHAR
);
CREATE TABLE migrations (
    id BIGINT PRIMARY KEY DEFAULT nextval('migration_ids'),
    gallery VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    plan JSON,
    cursor BIGINT,
    counts JSON,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL
);
""",
    2: _COMMON + """
CREATE TABLE versions (
    name VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,           -- base | harmonic | external
    backbone VARCHAR NOT NULL,
    dim INTEGER NOT NULL,
    recipe VARCHAR NOT NULL,
    parent VARCHAR,                  -- the version this one was made compatible with
    artifact VARCHAR NOT NULL,       -- relative to the registry root
    sha256 VARCHAR NOT NULL,
    size_bytes BIGINT,
    metrics JSON,
    meta JSON,
    created TIMESTAMP NOT NULL,      -- UTC
    created_by VARCHAR,              -- the command line that registered it
    status VARCHAR NOT NULL DEFAULT 'ready'   -- ready | deleted
);
CREATE TABLE migrations (
    id BIGINT PRIMARY KEY DEFAULT nextval('migration_ids'),
    gallery VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    state VARCHAR NOT NULL,          -- planned | backfilling | ready | swapped | rolled_back | failed
    plan JSON,
    cursor BIGINT,                   -- items backfilled so far
    counts JSON,
    report JSON,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL
);
""",
}


_TRANSFORMS = """
CREATE TABLE transforms (
    name VARCHAR PRIMARY KEY,
    from_version VARCHAR NOT NULL,   -- h reads vectors of this version ...
    to_version VARCHAR NOT NULL,     -- ... and writes vectors in this one's space
    in_dim INTEGER NOT NULL,
    out_dim INTEGER NOT NULL,
    artifact VARCHAR NOT NULL,       -- relative to the registry root: transforms/<name>/<file>
    sha256 VARCHAR NOT NULL,
    size_bytes BIGINT,
    recipe VARCHAR NOT NULL,
    metrics JSON,                    -- the measured table: per FAR VAL(from,from), VAL(to,to),
                                     -- VAL(to -> h(from)), VAL(h(from),h(from)), gain_recovered
    meta JSON,
    created TIMESTAMP NOT NULL,      -- UTC
    created_by VARCHAR,
    status VARCHAR NOT NULL DEFAULT 'ready'   -- ready | deleted
);
"""
DDL[3] = DDL[2] + _TRANSFORMS


def utcnow() -> datetime:
    """Naive UTC timestamp, the convention of every TIMESTAMP column."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _upgrade_1_to_2(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    con.execute("ALTER TABLE versions ADD COLUMN size_bytes BIGINT")
    con.execute("ALTER TABLE versions ADD COLUMN status VARCHAR NOT NULL DEFAULT 'ready'")
    con.execute("ALTER TABLE migrations ADD COLUMN report JSON")
    for name, artifact in con.execute("SELECT name, artifact FROM versions").fetchall():
        try:
            size = os.stat(root / artifact).st_size
        except OSError:
            continue  # `harmony registry verify` reports it as missing
        con.execute("UPDATE versions SET size_bytes = ? WHERE name = ?", [size, name])


def _upgrade_2_to_3(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    con.execute(_TRANSFORMS)


UPGRADES: dict[int, Callable[[duckdb.DuckDBPyConnection, Path], None]] = {1: _upgrade_1_to_2, 2: _upgrade_2_to_3}


def stored_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The schema version in the file, or None for an empty database."""
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
    if not tables:
        return None
    if "schema_info" not in tables:
        raise InvalidInput("database has tables but no schema_info: not a harmony registry",
                           hint="point --registry at a harmony registry folder or an empty one")
    row = con.execute("SELECT max(version) FROM schema_info").fetchone()
    if row is None or row[0] is None:
        raise InvalidInput("registry schema_info is empty", hint="restore the registry from a backup or export")
    return int(row[0])


def check_supported(version: int | None, db: Path) -> None:
    if version is not None and version > CURRENT:
        raise Incompatible(
            f"registry {db} has schema version {version}, newer than this harmony understands ({CURRENT})",
            hint="upgrade harmony (pip install -U harmony) to open it")


def create_or_upgrade(con: duckdb.DuckDBPyConnection, root: Path, db: Path) -> int:
    """Bring the schema to CURRENT inside the caller's transaction; returns the version found."""
    found = stored_version(con)
    check_supported(found, db)
    if found is None:
        create(con, CURRENT)
        return CURRENT
    for v in range(found, CURRENT):
        UPGRADES[v](con, root)
    if found < CURRENT:
        con.execute("DELETE FROM schema_info")
        con.execute("INSERT INTO schema_info VALUES (?, ?)", [CURRENT, utcnow()])
    return found


def create(con: duckdb.DuckDBPyConnection, version: int) -> None:
    """Create schema ``version`` from scratch (old versions exist so tests can build them)."""
    for statement in DDL[version].split(";"):
        if statement.strip():
            con.execute(statement)
    con.execute("INSERT INTO schema_info VALUES (?, ?)", [version, utcnow()])
