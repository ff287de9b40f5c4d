"""Schema versioning: a real v1 database upgrades in place; a newer one is refused."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import pytest

from harmony.errors import Incompatible, InvalidInput
from harmony.registry import Registry
from harmony.registry import schema
from harmony.registry.artifacts import sha256_file


def _write_v1_registry(root, tmp_path):
    """Build a registry exactly as schema 1 stored it: v1 DDL, one version with its artifact,
    a gallery and a migration (v1 had no size_bytes, status or migrations.report)."""
    (root / "artifacts" / "v1").mkdir(parents=True)
    artifact = root / "artifacts" / "v1" / "model.pt"
    artifact.write_bytes(b"weights" * 100)
    con = duckdb.connect(str(root / "harmony.duckdb"))
    try:
        schema.create(con, 1)
        now = datetime(2025, 1, 2, 3, 4, 5)
        con.execute("INSERT INTO versions VALUES ('v1', 'base', 'tiny', 128, '', NULL, 'artifacts/v1/model.pt', ?, "
                    "'{\"val\": 0.5}', NULL, ?, 'harmony train base')", [sha256_file(artifact), now])
        con.execute("INSERT INTO versions VALUES ('lost', 'base', 'tiny', 64, '', NULL, 'artifacts/lost/x.pt', "
                    "'00', NULL, NULL, ?, NULL)", [now])
        con.execute("INSERT INTO galleries VALUES ('faces', 'v1', 'g/faces', 0.001, 'flat', NULL, ?, ?)", [now, now])
        con.execute("INSERT INTO migrations (gallery, source, target, state, plan, created, updated) "
                    "VALUES ('faces', 'v1', 'lost', 'planned', '{}', ?, ?)", [now, now])
        columns = {r[0] for r in con.execute("DESCRIBE versions").fetchall()}
        assert "size_bytes" not in columns and "status" not in columns
    finally:
        con.close()
    return artifact


def test_upgrade_from_v1(tmp_path):
    root = tmp_path / "old"
    artifact = _write_v1_registry(root, tmp_path)
    reg = Registry.open(root)
    v = reg.get_version("v1")
    assert (v.size_bytes, v.status, v.metrics, v.created_by) == (700, "ready", {"val": 0.5}, "harmony train base")
    assert reg.get_version("lost").size_bytes is None  # its file never existed
    assert reg.artifact_path("v1") == artifact
    m = reg.update_migration(1, state="failed", report={"reason": "target lost"})
    assert m.report == {"reason": "target lost"}
    con = duckdb.connect(str(reg.db_path), read_only=True)
    try:
        assert con.execute("SELECT version FROM schema_info").fetchall() == [(schema.CURRENT,)]
    finally:
        con.close()
    Registry.open(root)  # idempotent


def test_failed_upgrade_leaves_v1_untouched(tmp_path, monkeypatch):
    root = tmp_path / "old"
    _write_v1_registry(root, tmp_path)

    def broken(con, root):
        con.execute("ALTER TABLE versions ADD COLUMN size_bytes BIGINT")
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(schema.UPGRADES, 1, broken)
    with pytest.raises(RuntimeError):
        Registry.open(root)
    con = duckdb.connect(str(root / "harmony.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT version FROM schema_info").fetchall() == [(1,)]
        assert "size_bytes" not in {r[0] for r in con.execute("DESCRIBE versions").fetchall()}
    finally:
        con.close()


def test_newer_schema_refused(tmp_path, reg):
    con = duckdb.connect(str(reg.db_path))
    con.execute("UPDATE schema_info SET version = ?", [schema.CURRENT + 1])
    con.close()
    with pytest.raises(Incompatible, match=f"schema version {schema.CURRENT + 1}") as err:
        Registry.open(reg.root)
    assert "upgrade harmony" in err.value.hint


def test_foreign_database_refused(tmp_path):
    root = tmp_path / "foreign"
    root.mkdir()
    con = duckdb.connect(str(root / "harmony.duckdb"))
    con.execute("CREATE TABLE stuff (x INTEGER)")
    con.close()
    with pytest.raises(InvalidInput, match="not a harmony registry"):
        Registry.open(root)


def test_export_parquet_and_json(reg, add, tmp_path):
    add("v1", metrics={"val": 0.5})
    reg.set_alias("prod", "v1")
    paths = reg.export(tmp_path / "out", "parquet")
    names = sorted(p.name for p in paths)
    assert names == sorted(f"{t}.parquet" for t in ("aliases", "compatibility", "evaluations", "galleries",
                                                    "migrations", "schema_info", "transforms", "versions"))
    rows = duckdb.sql(f"SELECT name, metrics FROM '{tmp_path / 'out' / 'versions.parquet'}'").fetchall()
    assert rows[0][0] == "v1" and json.loads(rows[0][1]) == {"val": 0.5}
    jpaths = reg.export(tmp_path / "out", "json")
    versions = json.loads((tmp_path / "out" / "versions.json").read_text())
    assert versions[0]["metrics"] == {"val": 0.5} and versions[0]["created"].endswith("+00:00")
    assert json.loads((tmp_path / "out" / "aliases.json").read_text())[0]["alias"] == "prod"
    assert len(jpaths) == len(paths)
    with pytest.raises(InvalidInput):
        reg.export(tmp_path / "out", "csv")
