"""Item 1: `harmony registry sql` must be read-only in fact: no file written or read outside the
catalog, no other database attached, no extension installed, the configuration locked."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from harmony.cli.registry import app

runner = CliRunner()


@pytest.fixture()
def filled(reg, add, tmp_path):
    add("v1")
    add("v2", parent="v1", kind="harmonic")
    (tmp_path / "secret.txt").write_text("outside the registry")
    return reg


def attacks(reg, tmp_path) -> list[str]:
    art = reg.root / reg.get_version("v1").artifact
    return [
        f"COPY (SELECT 42) TO '{art}'",
        f"COPY (SELECT 42 AS x) TO '{reg.root}/galleries/prod/gallery.json' (FORMAT json)",
        f"ATTACH '{tmp_path}/other.duckdb' AS w (READ_WRITE)",
        f"SELECT * FROM read_text('{tmp_path}/secret.txt')",
        f"SELECT * FROM read_csv('{tmp_path}/secret.txt')",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        f"EXPORT DATABASE '{tmp_path}/dump'",
        "CREATE TABLE evil (a INT)",
        "DELETE FROM versions",
        "UPDATE versions SET sha256 = 'x'",
        "ATTACH ':memory:' AS m; CREATE TABLE m.t AS SELECT 1",
    ]


def test_every_attack_is_refused_and_changes_nothing(filled, tmp_path, digest):
    before = digest(filled.root)
    for sql in attacks(filled, tmp_path):
        result = runner.invoke(app, ["sql", sql, "--registry", str(filled.root)])
        assert result.exit_code == 2, (sql, result.output)
        assert "error:" in result.output and "Traceback" not in result.output, (sql, result.output)
        assert "outside the registry" not in result.output
    assert digest(filled.root) == before
    assert not (tmp_path / "other.duckdb").exists() and not (tmp_path / "dump").exists()
    # the door still does its job afterwards
    ok = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM versions", "--json", "--registry", str(filled.root)])
    assert ok.exit_code == 0 and '"n": 2' in ok.output


def test_library_query_is_sandboxed_too(filled, tmp_path):
    from harmony.errors import InvalidInput

    with pytest.raises(InvalidInput, match="query failed"):
        filled.query(f"SELECT * FROM read_text('{tmp_path}/secret.txt')")
    assert filled.query("SELECT name FROM versions ORDER BY name") == (["name"], [("v1",), ("v2",)])
