"""Item 2: a gallery's files are checksummed at commit; a flipped byte in a stored vector is
refused by search (one line naming the file and the fix), reported by `registry verify` (exit 1)
and by `gallery info` / `migrate status`; a gallery of an older harmony still opens, unverified."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from harmony.cli.gallery import app as gallery_app
from harmony.cli.migrate import app as migrate_app
from harmony.cli.registry import app as registry_app
from harmony.gallery import checksums
from harmony.gallery.catalog import build_gallery, open_gallery
from harmony.migration.search import search_gallery
from tests.gallery.helpers import env, shared_versions  # noqa: F401  (fixtures)

runner = CliRunner()


def invoke(app, *args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def one_line_error(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "(fix: " in lines[0] and "Traceback" not in result.output
    return lines[0]


def flip_a_stored_vector(env, gallery: str = "G") -> str:
    """The issue's attack: XOR 0x40 into one byte of one stored vector of the index file."""
    _, store = open_gallery(env.reg, gallery, use_gpu=False)
    item = str(store.items().item_ids[5])
    vec = store.vectors([item])[0].astype(np.float32).tobytes()
    path = store.path / store._meta["indexes"][store.active_version]
    data = bytearray(path.read_bytes())
    at = bytes(data).find(vec)
    assert at >= 0
    data[at + 2] ^= 0x40
    path.write_bytes(bytes(data))
    return path.name


def test_flipped_vector_is_refused_by_search_and_reported_everywhere(env):
    build_gallery(env.reg, "G", "v1", env.faces)
    query = env.faces / "id000" / "000.png"
    assert invoke(gallery_app, "search", "--name", "G", "--query", query).exit_code == 0
    name = flip_a_stored_vector(env)

    line = one_line_error(invoke(gallery_app, "search", "--name", "G", "--query", query, "-k", "3"))
    assert name in line and "altered" in line and "gallery rm G --force" in line

    v = invoke(registry_app, "verify", "--json")
    assert v.exit_code == 1, v.output
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in json.loads(v.stdout) if r["name"] == "G"}
    assert rows[name]["status"] == "altered" and rows["gallery.json"]["status"] == "ok"
    assert all(r["status"] == "ok" for f, r in rows.items() if f != name)
    table = invoke(registry_app, "verify")
    assert table.exit_code == 1 and name in table.output

    info = invoke(gallery_app, "info", "--name", "G", "--json")
    assert info.exit_code == 0
    warnings = json.loads(info.stdout)["warnings"]
    assert len(warnings) == 1 and name in warnings[0] and "fails its integrity check" in warnings[0]
    status = invoke(migrate_app, "status", "--gallery", "G")
    assert status.exit_code == 0 and "fails its integrity check" in status.output and name in status.output


def test_a_clean_gallery_verifies_ok_and_an_altered_meta_is_refused(env):
    build_gallery(env.reg, "G", "v1", env.faces)
    rows = env.reg.verify_galleries()
    assert [r.status for r in rows] == ["ok", "ok", "ok"]  # gallery.json, items, index-v1
    meta_path = env.root / "galleries" / "G" / "gallery.json"
    meta = json.loads(meta_path.read_text())
    meta["active"] = "v2"  # point the gallery elsewhere by hand
    meta_path.write_text(json.dumps(meta))
    line = one_line_error(invoke(gallery_app, "search", "--name", "G", "--query", env.faces / "id000"))
    assert "gallery.json was altered" in line
    assert [r.status for r in env.reg.verify_galleries()][0] == "altered"
    info = json.loads(invoke(gallery_app, "info", "--name", "G", "--json").stdout)
    assert info["store"] is None and "gallery.json was altered" in info["warnings"][0]


def test_missing_index_file_and_missing_folder(env):
    build_gallery(env.reg, "G", "v1", env.faces)
    _, store = open_gallery(env.reg, "G", use_gpu=False)
    (store.path / store._meta["indexes"]["v1"]).unlink()
    assert "missing" in [r.status for r in env.reg.verify_galleries("G")]
    assert invoke(registry_app, "verify", "--gallery", "G").exit_code == 1
    import shutil

    shutil.rmtree(store.path)
    rows = env.reg.verify_galleries()
    assert [(r.name, r.status) for r in rows] == [("G", "missing")] and "gallery rm G" in rows[0].detail


def test_repeated_search_does_not_rehash(env, monkeypatch):
    build_gallery(env.reg, "G", "v1", env.faces)
    checksums._hashes.clear()
    reads = []  # files hashed (read whole) by the integrity check
    real_hash = checksums.sha256_file

    def counting_hash(path):
        reads.append(str(path))
        return real_hash(path)

    monkeypatch.setattr(checksums, "sha256_file", counting_hash)
    query = env.faces / "id001"
    first = search_gallery(env.reg, "G", query, 3)
    assert any(".faiss" in p for p in reads)
    reads.clear()
    second = search_gallery(env.reg, "G", query, 3)  # a fresh store object: the index is loaded again
    assert reads == [] and first.hits == second.hits


def test_gallery_of_an_older_harmony_opens_unverified(env):
    build_gallery(env.reg, "G", "v1", env.faces)
    meta_path = env.root / "galleries" / "G" / "gallery.json"
    meta = json.loads(meta_path.read_text())
    for key in (checksums.FILES, checksums.SEAL):
        del meta[key]
    meta_path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    r = invoke(gallery_app, "search", "--name", "G", "--query", env.faces / "id002" / "000.png", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["results"][0]["hits"][0]["item_id"] == "id002/000.png"
    v = invoke(registry_app, "verify", "--json")
    assert v.exit_code == 0, v.output
    assert {r["status"] for r in json.loads(v.stdout) if r["name"] == "G"} == {"unverified"}
    assert "unverified" in invoke(registry_app, "verify").output
    assert invoke(gallery_app, "info", "--name", "G").exit_code == 0
    # the next change records checksums of every live file
    assert invoke(gallery_app, "remove", "--name", "G", "id000/000.png").exit_code == 0
    assert {r.status for r in env.reg.verify_galleries()} == {"ok"}
