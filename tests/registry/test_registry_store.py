"""Versions, aliases, lineage, artifacts, evaluations, compatibility and removal rules."""

from __future__ import annotations

import hashlib
import math

import duckdb
import numpy as np
import pytest
import torch

from harmony.errors import AlreadyExists, IntegrityError, InUse, InvalidInput, NotFound
from harmony.models.loading import load_checkpoint
from harmony.registry import Registry
from harmony.migration.gate import verdict_view
from harmony.migration.states import begin

TABLE = {"old_old": 0.90, "new_new": 0.95, "new_old": 0.91, "old_new": 0.91}


def test_add_get_list_roundtrip(reg, make_ckpt):
    src = make_ckpt(seed=3, name="last.ckpt")
    v = reg.add_version("v1", kind="base", artifact=src, backbone="tiny-cnn", dim=128, recipe="lr: 0.1\n",
                        metrics={"val@1e-3": np.float32(0.5), "nan": float("nan")}, meta={"seed": np.int64(3)},
                        command="harmony train base --name v1")
    assert v.artifact == "artifacts/v1/last.ckpt"
    stored = reg.root / v.artifact
    assert stored.read_bytes() == src.read_bytes()
    assert v.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert v.size_bytes == src.stat().st_size
    assert v.metrics == {"val@1e-3": 0.5, "nan": None} and v.meta == {"seed": 3}
    assert v.created.tzinfo is not None and v.created_by == "harmony train base --name v1"
    assert v.status == "ready" and v.kind == "base" and v.dim == 128 and v.recipe == "lr: 0.1\n"
    assert reg.get_version("v1") == v
    assert [x.name for x in reg.list_versions()] == ["v1"]
    with pytest.raises(Exception):  # frozen
        v.name = "v9"  # type: ignore[misc]


def test_json_columns_are_plain_sql(reg, add):
    add("v1", metrics={"val": 0.75})
    con = duckdb.connect(str(reg.db_path), read_only=True)
    try:
        assert con.execute("SELECT metrics->>'$.val' FROM versions WHERE name = 'v1'").fetchone() == ("0.75",)
        assert con.execute("SELECT version FROM schema_info").fetchone() == (3,)
    finally:
        con.close()


def test_duplicate_and_invalid_names(reg, add):
    add("v1")
    with pytest.raises(AlreadyExists, match="'v1' already exists") as err:
        add("v1", seed=1)
    assert "--name" in err.value.hint
    for bad in ("", "-v", "a b", "../x", "v/1", ".hidden"):
        with pytest.raises(InvalidInput):
            add(bad)
    with pytest.raises(InvalidInput, match="kind"):
        add("v2", kind="fancy")
    for dim in (0, -3, 1.5, "128", True):
        with pytest.raises(InvalidInput, match="dim"):
            reg.add_version("v2", kind="base", artifact=reg.db_path, backbone="x", dim=dim)
    with pytest.raises(InvalidInput, match="does not exist"):
        reg.add_version("v3", kind="base", artifact=reg.root / "nope.pt", backbone="x", dim=8)
    assert not (reg.root / "artifacts" / "v3").exists()


def test_unknown_version_error_text(reg, add):
    add("v1")
    with pytest.raises(NotFound) as err:
        reg.get_version("v7")
    assert str(err.value) == "no version or alias named 'v7' (fix: see `harmony registry list`)"
    with pytest.raises(NotFound):
        add("v2", parent="v7")
    assert [v.name for v in reg.list_versions()] == ["v1"]


def test_aliases_and_lineage(reg, add):
    add("v1")
    add("v2", parent="v1", kind="harmonic")
    reg.set_alias("prod", "v1")
    add("v3", parent="prod", kind="harmonic")  # parent given as an alias is stored resolved
    assert reg.get_version("v3").parent == "v1"
    add("v4", parent="v2", kind="harmonic")
    assert [v.name for v in reg.lineage("v4")] == ["v4", "v2", "v1"]
    assert [v.name for v in reg.lineage("prod")] == ["v1"]
    reg.set_alias("prod", "v2")
    reg.set_alias("stable", "prod")  # alias of an alias resolves once, now
    reg.set_alias("prod", "v4")
    assert reg.aliases() == {"prod": "v4", "stable": "v2"}
    assert reg.resolve("prod") == "v4" and reg.get_version("stable").name == "v2"
    with pytest.raises(InvalidInput, match="shadow"):
        reg.set_alias("v1", "v2")
    with pytest.raises(AlreadyExists, match="alias"):
        add("prod")
    reg.remove_alias("stable")
    with pytest.raises(NotFound):
        reg.remove_alias("stable")
    assert reg.aliases() == {"prod": "v4"}


def test_tampered_artifact_refused(reg, add):
    v = add("v1", seed=1)
    assert torch.equal(load_checkpoint(reg, "v1")["state_dict"]["embed.weight"],
                       torch.randn(8, 4, generator=torch.Generator().manual_seed(1)))
    path = reg.root / v.artifact
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=str(path)):
        reg.artifact_path("v1")
    with pytest.raises(IntegrityError, match="altered"):
        load_checkpoint(reg, "v1")
    assert reg.artifact_path("v1", verify=False) == path
    assert [(r.name, r.status) for r in reg.verify()] == [("v1", "altered")]
    path.unlink()
    with pytest.raises(IntegrityError, match="missing"):
        reg.artifact_path("v1", verify=False)
    assert [(r.name, r.status) for r in reg.verify("v1")] == [("v1", "missing")]


def test_remove_protections(reg, add):
    add("v1")
    add("v2", parent="v1", kind="harmonic")
    reg.set_alias("prod", "v2")
    with pytest.raises(InUse, match="parent of version 'v2'"):
        reg.remove_version("v1")
    with pytest.raises(InUse, match="alias 'prod'"):
        reg.remove_version("v2")
    with pytest.raises(InUse, match="is an alias"):
        reg.remove_version("prod")
    reg.remove_alias("prod")
    reg.add_gallery("faces", version="v2", path="galleries/faces")
    with pytest.raises(InUse, match="gallery 'faces'"):
        reg.remove_version("v2")
    add("v3", parent="v1", kind="harmonic")
    mig = begin(reg, "faces", "v2", "v3", {"mixed": False})
    reg.update_gallery("faces", version="v3")
    with pytest.raises(InUse, match=f"migration #{mig.id}"):
        reg.remove_version("v2")
    reg.update_migration(mig.id, state="failed")
    reg.remove_version("v2")
    assert not (reg.root / "artifacts" / "v2").exists()
    assert [v.name for v in reg.list_versions()] == ["v1", "v3"]
    assert [v.status for v in reg.list_versions(include_deleted=True)] == ["ready", "deleted", "ready"]
    with pytest.raises(NotFound, match="removed"):
        reg.get_version("v2")
    with pytest.raises(AlreadyExists, match="never reused"):
        add("v2")
    assert [r.status for r in reg.verify()] == ["ok", "ok"]


def test_evaluations_and_compatibility(reg, add):
    add("v1")
    add("v2", parent="v1", kind="harmonic")
    e1 = reg.record_evaluation("v1", "synthetic-test", {"val@1e-3": 0.8})
    e2 = reg.record_evaluation("v2", "synthetic-test", {"val@1e-3": 0.84}, against="v1")
    assert e2 > e1
    assert [e["metrics"] for e in reg.evaluations("v2")] == [{"val@1e-3": 0.84}]
    assert reg.evaluations("v2")[0]["against"] == "v1" and len(reg.evaluations()) == 2

    assert verdict_view(reg, "v2", "v1", 1e-3).verdict is None
    reg.record_compatibility("v2", "v1", "synthetic-test", 1e-3, {**TABLE, "thresholds": {"new_old": 0.8}}, True)
    reg.record_compatibility("v2", "v1", "synthetic-test", 1e-2, TABLE, True)
    reg.record_compatibility("v2", "v1", "lfw", 1e-3, {**TABLE, "new_old": 0.85}, False)  # newer, other dataset
    assert verdict_view(reg, "v2", "v1", 1e-3).verdict is False
    assert verdict_view(reg, "v2", "v1", 0.01).verdict is True
    assert verdict_view(reg, "v2", "v1", 1e-4).verdict is None
    assert verdict_view(reg, "v1", "v2", 1e-3).verdict is None  # direction matters
    assert verdict_view(reg, "v1", "v1", 1e-3).verdict is True
    reg.record_compatibility("v2", "v1", "synthetic-test", 1e-3, {**TABLE, "new_old": 0.92}, True)
    assert verdict_view(reg, "v2", "v1", 1e-3).verdict is True
    rows = reg.compatibility("v2", "v1")
    assert [(c.dataset, c.far, c.table["new_old"]) for c in rows] == [
        ("lfw", 1e-3, 0.85), ("synthetic-test", 1e-3, 0.92), ("synthetic-test", 1e-2, 0.91)]
    assert "thresholds" not in rows[1].table  # the newest row replaced the one that had them
    with pytest.raises(InvalidInput, match="lacks old_new"):
        reg.record_compatibility("v2", "v1", "x", 1e-3, {k: v for k, v in TABLE.items() if k != "old_new"}, True)
    with pytest.raises(InvalidInput, match="VAL"):
        reg.record_compatibility("v2", "v1", "x", 1e-3, {**TABLE, "old_old": 1.5}, True)
    with pytest.raises(InvalidInput, match="FAR"):
        reg.record_compatibility("v2", "v1", "x", 0.0, TABLE, True)


def test_verdict_is_never_transitive(reg, add):
    for name, parent in (("v1", None), ("v2", "v1"), ("v3", "v2")):
        add(name, parent=parent)
    reg.record_compatibility("v2", "v1", "d", 1e-3, TABLE, True)
    reg.record_compatibility("v3", "v2", "d", 1e-3, TABLE, True)
    assert verdict_view(reg, "v3", "v1", 1e-3).verdict is None


def test_galleries(reg, add):
    add("v1")
    add("v2")
    reg.set_alias("prod", "v1")
    g = reg.add_gallery("faces", version="prod", path="galleries/faces", meta={"n": 10})
    assert (g.version, g.far, g.codec, g.meta) == ("v1", 1e-3, "flat", {"n": 10})
    with pytest.raises(AlreadyExists):
        reg.add_gallery("faces", version="v1", path="p")
    g2 = reg.update_gallery("faces", version="v2", codec="sq8", far=1e-2)
    assert (g2.version, g2.codec, g2.far, g2.created) == ("v2", "sq8", 1e-2, g.created)
    with pytest.raises(InvalidInput, match="sha256"):
        reg.update_gallery("faces", sha256="x")
    with pytest.raises(NotFound):
        reg.update_gallery("faces", version="v9")
    assert [x.name for x in reg.list_galleries()] == ["faces"]
    reg.remove_gallery("faces")
    with pytest.raises(NotFound, match="no gallery"):
        reg.get_gallery("faces")


def test_open_creates_layout_and_respects_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HARMONY_REGISTRY", str(tmp_path / "from-env"))
    reg = Registry.open()
    assert reg.root == (tmp_path / "from-env").absolute()
    assert (reg.root / "harmony.duckdb").is_file() and (reg.root / "artifacts").is_dir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARMONY_REGISTRY")
    assert Registry.open().root == (tmp_path / "registry").absolute()
    assert Registry.open(tmp_path / "flag").root == (tmp_path / "flag").absolute()
    assert math.isclose(Registry.open(tmp_path / "flag", timeout_s=2).timeout_s, 2.0)


def test_query_is_read_only(reg, add):
    add("v1")
    assert reg.query("SELECT name, dim FROM versions") == (["name", "dim"], [("v1", 128)])
    with pytest.raises(InvalidInput, match="query failed"):
        reg.query("DELETE FROM versions")
    assert len(reg.list_versions()) == 1
