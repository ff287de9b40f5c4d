"""Transform edges in the registry and `harmony migrate gallery --via`: the edge's row, artifact
checksum and weights_only loading; a conversion that reads no image (sources deleted, the image
decoder poisoned) and equals h over the stored vectors; the follow-up backfill; atomicity; the
bad inputs; the registry and train CLI. Tiny untrained versions (tests.gallery.helpers), a micro
transform recipe: each transform trains in about a second."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from harmony.cli.migrate import app as migrate_app
from harmony.cli.registry import app as registry_app
from harmony.cli.train import app as train_app
from harmony.errors import AlreadyExists, DiskFull, Incompatible, IntegrityError, InUse, InvalidInput, NotFound
from harmony.gallery import index as fx
from harmony.gallery.catalog import build_gallery, open_gallery
from harmony.migration.convert import plan_conversion, run_conversion
from harmony.migration.plan import plan_migration
from harmony.migration.run import run_migration
from harmony.models.transform import apply_transform, load_transform
from harmony.recipe import transform_recipe_from_dict
from harmony.registry import Registry, schema
from harmony.registry.artifacts import sha256_file
from harmony.training.transform import crop_encoder, paired_split, train_transform, transform_table
from tests.gallery.helpers import (assert_same_hits, brute_force, direct_vectors, one_thread, shared_versions,  # noqa: F401
                                   write_faces)

runner = CliRunner()
DATA = {"source": "synthetic", "image_size": 32, "train_identities": 24, "per_identity": 4, "val_identities": 8,
        "test_identities": 10, "eval_per_identity": 4}
MICRO = {"name": "micro-transform", "seed": 0, "data": DATA,
         "transform": {"steps": 40, "p": 8, "k": 4, "lr": 1e-2}, "eval": {"fars": [0.1, 0.01]}}


def micro(**transform):
    return transform_recipe_from_dict({**MICRO, "transform": {**MICRO["transform"], **transform}})


def invoke(app, *args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def one_line_error(r, *needles: str) -> None:
    """Exit status 2 and exactly one `error: ... (fix: ...)` line naming the problem."""
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "(fix: " in lines[0], r.output
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="session")
def shared_edges(shared_versions, tmp_path_factory):
    """The shared v1/v2/v3/v8 registry plus transforms v1-to-v2 (16-D) and v8-to-v1 (8-D -> 16-D)."""
    base = tmp_path_factory.mktemp("edges")
    shutil.copytree(shared_versions / "registry", base / "registry")
    shutil.copytree(shared_versions / "faces", base / "faces")
    with one_thread():
        reg = Registry.open(base / "registry")
        train_transform(reg, micro(), "v1-to-v2", "v1", "v2")
        train_transform(reg, micro(), "v8-to-v1", "v8", "v1")
    return base


class Env:
    def __init__(self, base: Path, tmp: Path):
        self.root = Path(shutil.copytree(base / "registry", tmp / "registry"))
        self.faces = Path(shutil.copytree(base / "faces", tmp / "faces"))
        self.tmp = tmp
        self.reg = Registry.open(self.root)


@pytest.fixture
def tenv(shared_edges, tmp_path, monkeypatch):
    monkeypatch.setenv("HARMONY_REGISTRY", str(tmp_path / "registry"))
    with one_thread():
        yield Env(shared_edges, tmp_path)


def poison_image_reads(monkeypatch) -> None:
    """Any attempt to decode an image (the one decoder, or the pipeline's read step) fails the test."""
    import harmony.data.images as images
    import harmony.models.pipeline as pipeline

    def boom(*a, **k):
        raise AssertionError("an image was read")

    for mod, names in ((images, ("load_image", "read_rgb", "load_images")), (pipeline, ("load_chunk", "embed_source"))):
        for n in names:
            monkeypatch.setattr(mod, n, boom)


def stored(reg, gallery: str, version: str) -> tuple[list[str], np.ndarray]:
    _, store = open_gallery(reg, gallery)
    names = [str(s) for s in store.items().item_ids]
    return names, store.vectors(names, version)


# -- the edge in the registry -----------------------------------------------------------------

def test_train_transform_registers_an_edge_whose_table_is_the_metrics_on_test_identities(tenv):
    e = tenv.reg.get_transform("v1-to-v2")
    assert (e.from_version, e.to_version, e.in_dim, e.out_dim, e.status) == ("v1", "v2", 16, 16, "ready")
    path = tenv.root / e.artifact
    assert e.artifact == "transforms/v1-to-v2/transform.pt" and sha256_file(path) == e.sha256
    assert e.size_bytes == path.stat().st_size and "transform:" in e.recipe
    assert [t.name for t in tenv.reg.transforms(to_version="v2")] == ["v1-to-v2"]
    assert [t.name for t in tenv.reg.transforms(from_version="v8")] == ["v8-to-v1"]
    # the recorded table is recomputed here from the test split embedded by both versions and h
    _, h = load_transform(tenv.reg, "v1-to-v2")
    test = paired_split(crop_encoder(tenv.reg, "v1"), crop_encoder(tenv.reg, "v2"), micro().data, "test")
    twin = transform_table(test, apply_transform(h, test.old), (0.1, 0.01), "v1", "v2")
    assert e.metrics["test"] == json.loads(json.dumps(twin))
    assert e.metrics["test"]["dataset"] == "synthetic:test:seed0:10x4:32px" and e.metrics["val"]["rows"]
    row = e.metrics["test"]["rows"][0]
    assert {"val_from_from", "val_to_to", "val_to_mapped", "val_mapped_mapped", "gain_recovered"} <= set(row)
    # queryable with plain SQL, like every registry table
    cols, rows = tenv.reg.query("SELECT name, from_version, to_version, in_dim FROM transforms ORDER BY name")
    assert rows == [("v1-to-v2", "v1", "v2", 16), ("v8-to-v1", "v8", "v1", 8)]


def test_the_artifact_is_checked_on_load_and_loaded_weights_only(tenv, monkeypatch):
    calls = []
    real = torch.load

    def spy(*a, **k):
        calls.append(k.get("weights_only"))
        return real(*a, **k)

    monkeypatch.setattr(torch, "load", spy)
    edge, h = load_transform(tenv.reg, "v1-to-v2")
    assert calls == [True] and (h.in_dim, h.out_dim) == (16, 16)
    monkeypatch.setattr(torch, "load", real)

    path = tenv.root / edge.artifact
    path.write_bytes(path.read_bytes() + b"x")  # altered after registration
    with pytest.raises(IntegrityError, match="was altered: sha256"):
        load_transform(tenv.reg, "v1-to-v2")
    assert {r.name: r.status for r in tenv.reg.verify()}["v1-to-v2"] == "altered"
    assert [r.status for r in tenv.reg.verify("v1-to-v2")] == ["altered"]
    path.unlink()
    with pytest.raises(IntegrityError, match="is missing"):
        load_transform(tenv.reg, "v1-to-v2")

    # a file carrying a pickled object is never unpickled: weights_only refuses it
    evil = tenv.tmp / "evil.pt"
    torch.save({"format": "harmony.transform/1", "spec": {"in_dim": 16, "out_dim": 16, "hidden": 4},
                "state_dict": {}, "payload": Path("/etc/passwd")}, evil)
    tenv.reg.add_transform("evil", from_version="v1", to_version="v3", artifact=evil, in_dim=16, out_dim=16)
    with pytest.raises(IntegrityError, match="holds objects other than tensors"):
        load_transform(tenv.reg, "evil")


def test_edge_registration_refuses_bad_input(tenv):
    f = tenv.root / "transforms" / "v1-to-v2" / "transform.pt"
    with pytest.raises(NotFound, match="no version or alias named 'v9'"):
        tenv.reg.add_transform("t", from_version="v9", to_version="v2", artifact=f, in_dim=16, out_dim=16)
    with pytest.raises(Incompatible, match="maps 16-D to 16-D vectors, but v8 embeds in 8-D"):
        tenv.reg.add_transform("t", from_version="v8", to_version="v2", artifact=f, in_dim=16, out_dim=16)
    with pytest.raises(InvalidInput, match="two different versions"):
        tenv.reg.add_transform("t", from_version="v1", to_version="v1", artifact=f, in_dim=16, out_dim=16)
    for taken in ("v1-to-v2", "v1"):
        with pytest.raises(AlreadyExists):
            tenv.reg.add_transform(taken, from_version="v1", to_version="v3", artifact=f, in_dim=16, out_dim=16)
    with pytest.raises(AlreadyExists, match="already a transform"):
        tenv.reg.add_version("v1-to-v2", kind="base", artifact=f, backbone="x", dim=16)
    with pytest.raises(InvalidInput, match="shadow the transform"):
        tenv.reg.set_alias("v1-to-v2", "v1")
    with pytest.raises(InUse, match="end of transform 'v1-to-v2'"):
        tenv.reg.remove_version("v2")
    assert not (tenv.root / "transforms" / "t").exists()  # nothing half-written


def test_schema_2_registry_upgrades_to_3_with_the_transforms_table(tmp_path):
    root = tmp_path / "old"
    root.mkdir()
    con = duckdb.connect(str(root / "harmony.duckdb"))
    schema.create(con, 2)
    con.close()
    reg = Registry.open(root)
    assert reg.transforms() == []
    _, rows = reg.query("SELECT version FROM schema_info")
    assert rows == [(schema.CURRENT,)] and schema.CURRENT == 3


# -- migrate --via ------------------------------------------------------------------------------

def test_via_converts_stored_vectors_without_reading_an_image(tenv):
    build_gallery(tenv.reg, "G", "v1", tenv.faces)
    names, v1 = stored(tenv.reg, "G", "v1")
    shutil.rmtree(tenv.faces)  # the gallery's photos are gone
    with pytest.MonkeyPatch.context() as mp:
        poison_image_reads(mp)
        r = invoke(migrate_app, "gallery", "--gallery", "G", "--to", "v2", "--via", "v1-to-v2", "--swap", "--json")
        from harmony.models.pipeline import FileEmbedder

        with pytest.raises(AssertionError, match="an image was read"):  # the poison does catch a re-embed
            FileEmbedder(tenv.reg, "v2")([str(tenv.tmp / "any.png")])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["plan"]["mode"] == "transform" and out["plan"]["via"] == "v1-to-v2"
    assert out["migration"]["state"] == "swapped" and out["conversion"]["n_converted"] == 48
    rep = out["report"]
    assert rep["mode"] == "transform" and "no image was read" in rep["vectors"] and rep["candidates"] == 48
    assert rep["transform"]["rows"] == tenv.reg.get_transform("v1-to-v2").metrics["test"]["rows"]
    # the v2 index holds exactly h(stored v1 vectors), and every item says it was converted
    _, h = load_transform(tenv.reg, "v1-to-v2")
    _, v2 = stored(tenv.reg, "G", "v2")
    np.testing.assert_allclose(v2, apply_transform(h, v1), atol=1e-6)
    _, store = open_gallery(tenv.reg, "G")
    assert set(store.items().via) == {"v1-to-v2"} and store.active_version == "v2"
    assert store.info().converted_by_transform == {"v1-to-v2": 48}
    labels = np.array([n.split("/")[0] for n in names])
    from harmony.metrics import val_at_far

    for row in rep["gallery"]:
        assert row["before"] == val_at_far(v1, labels, [row["far"]])[0].val
        assert row["converted"] == val_at_far(v2, labels, [row["far"]])[0].val
    # the registry row, read back, says the same
    mig = tenv.reg.migrations("G")[-1]
    assert (mig.state, mig.plan["mode"], mig.report["via"], mig.counts["converted_total"]) == (
        "swapped", "transform", "v1-to-v2", 48)

    # v2 queries against the converted index: a normal same-version search
    queries = write_faces(tenv.tmp / "queries", 3, 2, first_image=4)
    from harmony.migration.search import search_gallery

    res = search_gallery(tenv.reg, "G", queries, k=5)
    assert (res.mode, res.query_version) == ("direct", "v2")
    q = direct_vectors(tenv.reg, "v2", res.queries)
    assert_same_hits(res.hits, brute_force(q, v2, names, 48), 5)
    one_line_error(invoke(migrate_app, "gallery", "--gallery", "G", "--to", "v2", "--via", "v1-to-v2"),
                   "gallery G already serves v2")


@pytest.mark.parametrize("codec", ["sq8", "ivf"])
def test_via_reads_lossy_and_ivf_codecs_back_and_says_so(tenv, codec, monkeypatch):
    build_gallery(tenv.reg, "G", "v1", tenv.faces, codec=codec, nlist=4)
    _, store = open_gallery(tenv.reg, "G")
    ids = store.items().ids
    v1 = fx.reconstruct(store.index("v1"), ids, direct_map=True)
    poison_image_reads(monkeypatch)
    plan = plan_conversion(tenv.reg, "G", "v2", "v1-to-v2")
    assert plan.lossy == (codec == "sq8") and plan.n_convert == 48
    out = run_conversion(tenv.reg, plan)
    _, h = load_transform(tenv.reg, "v1-to-v2")
    got = fx.reconstruct(store.index("v2"), ids, direct_map=True)
    np.testing.assert_allclose(got, apply_transform(h, v1), atol=0.02 if codec == "sq8" else 1e-6)
    assert ("lossy" in out.report["vectors"]) == (codec == "sq8")
    assert any("8-bit codes (lossy)" in s for s in plan.steps(False)) == (codec == "sq8")


def test_a_later_backfill_reembeds_converted_items_whose_sources_exist(tenv):
    build_gallery(tenv.reg, "G", "v1", tenv.faces)
    out = run_conversion(tenv.reg, plan_conversion(tenv.reg, "G", "v2", "v1-to-v2"))
    assert out.migration.state == "ready"
    status = " ".join(invoke(migrate_app, "status", "--gallery", "G").stdout.split())
    assert "48 item(s) hold v2 vectors converted via v1-to-v2" in status and "no image was read" in status
    names, converted = stored(tenv.reg, "G", "v2")
    gone = [n for n in names if n.startswith("id00")]  # identities 0-9 deleted, 10 and 11 remain
    for n in gone:
        (tenv.faces / n).unlink()
    plan = plan_migration(tenv.reg, "G", "v2")  # resumes the conversion's migration
    assert plan.resume == out.migration.id and plan.pending == 48
    res = run_migration(tenv.reg, plan, batch_size=16)
    assert res.complete and res.backfill.n_failed == len(gone) and res.backfill.n_embedded == 48 - len(gone)
    assert res.report["converted"] == len(gone) and "converted through a transform" in res.report["vectors"]
    _, store = open_gallery(tenv.reg, "G")
    table = store.items()
    via = dict(zip(table.item_ids, table.via))
    _, now = stored(tenv.reg, "G", "v2")
    kept = [n for n in names if n not in gone]
    direct = direct_vectors(tenv.reg, "v2", [tenv.faces / n for n in kept])
    for i, n in enumerate(names):
        if n in gone:  # no source: the converted vector stays, marked
            assert via[n] == "v1-to-v2"
            np.testing.assert_allclose(now[i], converted[i], atol=1e-7)
        else:  # re-embedded from the photo, no longer marked
            assert via[n] == ""
            np.testing.assert_allclose(now[i], direct[kept.index(n)], atol=1e-5)
    s = invoke(migrate_app, "swap", "--gallery", "G")
    assert s.exit_code == 0, s.output  # every item has a v2 vector: nothing missing


def test_a_failed_commit_leaves_the_gallery_as_it_was_and_the_rerun_finishes(tenv):
    build_gallery(tenv.reg, "G", "v1", tenv.faces)
    _, store = open_gallery(tenv.reg, "G")
    before = sorted(p.name for p in store.path.iterdir())

    def full(*a, **k):
        raise DiskFull("disk full while writing the index", hint="free some space")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fx, "save_index", full)
        with pytest.raises(DiskFull):
            run_conversion(tenv.reg, plan_conversion(tenv.reg, "G", "v2", "v1-to-v2"))
    _, store = open_gallery(tenv.reg, "G")
    assert sorted(p.name for p in store.path.iterdir()) == before
    assert store.versions() == ("v1",) and set(store.items().via) == {""}
    mig = tenv.reg.migrations("G")[-1]
    assert mig.state == "planned" and mig.plan["via"] == "v1-to-v2"
    with pytest.raises(InUse, match="converts gallery 'G' in migration"):  # the conversion in flight needs it
        tenv.reg.remove_transform("v1-to-v2")
    again = run_conversion(tenv.reg, plan_conversion(tenv.reg, "G", "v2", "v1-to-v2"))  # resumes that row
    assert again.migration.id == mig.id and again.migration.state == "ready"
    assert again.conversion.n_converted == 48


def test_via_bad_input_is_one_line_and_changes_nothing(tenv):
    build_gallery(tenv.reg, "G", "v1", tenv.faces)
    build_gallery(tenv.reg, "G3", "v3", tenv.faces)
    build_gallery(tenv.reg, "G8", "v8", tenv.faces)

    def snapshot():
        files = sorted(str(p.relative_to(tenv.root)) for p in (tenv.root / "galleries").rglob("*") if p.is_file())
        return files, tenv.reg.migrations()

    before = snapshot()
    cases = [
        (("G", "v2", "nope"), ("no transform named 'nope'",)),
        (("G", "v9", "v1-to-v2"), ("no version or alias named 'v9'",)),
        (("G", "v3", "v1-to-v2"), ("maps v1 -> v2, not to v3", "--to v2")),
        (("G3", "v2", "v1-to-v2"), ("converts v1 vectors, but gallery G3 holds v3 vectors", "--from v3 --to v2")),
        (("G8", "v1", "v8-to-v1"), ("maps 8-D to 16-D vectors, gallery G8 holds 8-D vectors",)),
        (("nogallery", "v2", "v1-to-v2"), ("nogallery",)),
    ]
    for (g, to, via), needles in cases:
        one_line_error(invoke(migrate_app, "gallery", "--gallery", g, "--to", to, "--via", via), *needles)
    one_line_error(invoke(migrate_app, "gallery", "--gallery", "G", "--to", "v2", "--via", "v1-to-v2",
                          "--max-batches", "1"), "--max-batches does not apply to --via")
    assert snapshot() == before

    # another migration in flight is not hijacked
    run_migration(tenv.reg, plan_migration(tenv.reg, "G", "v2"), batch_size=8, stop_after=1)
    one_line_error(invoke(migrate_app, "gallery", "--gallery", "G", "--to", "v2", "--via", "v1-to-v2"),
                   "migration #", "a backfill from the sources", "fix: finish it")


def test_eval_data_measures_the_edge_on_a_labelled_folder(tenv):
    build_gallery(tenv.reg, "G", "v1", tenv.faces)
    folder = write_faces(tenv.tmp / "labelled", 6, 3, first_image=4)
    out = run_conversion(tenv.reg, plan_conversion(tenv.reg, "G", "v2", "v1-to-v2"), eval_data=folder)
    ev = out.report["eval"]
    files = sorted(folder.glob("*/*.png"))
    v1, v2 = direct_vectors(tenv.reg, "v1", files), direct_vectors(tenv.reg, "v2", files)
    labels = np.array([f.parent.name for f in files])
    from harmony.training.transform import PairedSet

    _, h = load_transform(tenv.reg, "v1-to-v2")
    twin = transform_table(PairedSet(v1, v2, labels, "x"), apply_transform(h, v1), out.report["fars"])
    assert (ev["n_images"], ev["n_identities"], ev["unreadable"]) == (18, 6, 0)
    for got, want in zip(ev["rows"], twin["rows"]):
        for k in ("val_from_from", "val_to_to", "val_to_mapped", "val_mapped_mapped"):
            assert got[k] == pytest.approx(want[k], abs=1e-9), k
    from harmony.cli.render_migration import report_renderables

    assert len(report_renderables(out.report)) == 4  # vectors line, gallery table, recorded table, eval table


def test_dry_run_plans_and_changes_nothing(tenv):
    build_gallery(tenv.reg, "G", "v1", tenv.faces)
    r = invoke(migrate_app, "gallery", "--gallery", "G", "--to", "v2", "--via", "v1-to-v2", "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)["plan"]
    assert (plan["mode"], plan["via"], plan["n_convert"], plan["lossy"]) == ("transform", "v1-to-v2", 48, False)
    assert tenv.reg.migrations("G") == []
    text = " ".join(invoke(migrate_app, "gallery", "--gallery", "G", "--to", "v2", "--via", "v1-to-v2",
                           "--dry-run").stdout.split())
    assert "no image is read" in text and "nothing changed" in text


# -- CLI: train transform, registry --------------------------------------------------------------

def test_train_transform_cli_and_registry_commands(tenv, tmp_path):
    recipe = tmp_path / "t.yaml"
    recipe.write_text(yaml.safe_dump(MICRO))
    r = invoke(train_app, "transform", "--from", "v1", "--to", "v3", "--name", "v1-to-v3", "--recipe", recipe,
               "--steps", "20", "--json", "--quiet")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["transform"]["name"] == "v1-to-v3" and out["transform"]["from_version"] == "v1"
    assert [row["far"] for row in out["test"]["rows"]] == [0.1, 0.01]
    text = " ".join(invoke(train_app, "transform", "--from", "v3", "--to", "v1", "--name", "v3-to-v1", "--recipe",
                           recipe, "--steps", "20", "--quiet").stdout.split())
    assert "registered transform v3-to-v1" in text and "--via v3-to-v1" in text and "gain" in text
    one_line_error(invoke(train_app, "transform", "--from", "v1", "--to", "v9", "--name", "x", "--recipe", recipe),
                   "no version or alias named 'v9'")
    one_line_error(invoke(train_app, "transform", "--from", "v1", "--to", "v2", "--name", "v1-to-v2", "--recipe",
                          recipe), "transform 'v1-to-v2' already exists")
    one_line_error(invoke(train_app, "transform", "--from", "v1", "--to", "v1", "--name", "x", "--recipe", recipe),
                   "two different versions")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**MICRO, "model": {"dim": 16}}))
    one_line_error(invoke(train_app, "transform", "--from", "v1", "--to", "v2", "--name", "x", "--recipe", bad),
                   "has no 'model' section")
    assert [t.name for t in tenv.reg.transforms()] == ["v1-to-v2", "v8-to-v1", "v1-to-v3", "v3-to-v1"]

    listed = json.loads(invoke(registry_app, "transforms", "--to", "v1", "--json").stdout)
    assert [e["name"] for e in listed] == ["v8-to-v1", "v3-to-v1"]
    shown = json.loads(invoke(registry_app, "show", "v1-to-v2", "--json").stdout)
    assert shown["from_version"] == "v1" and shown["metrics"]["test"]["rows"]
    assert json.loads(invoke(registry_app, "show", "v1", "--json").stdout)["transforms"] == ["v1-to-v2", "v8-to-v1",
                                                                                           "v1-to-v3", "v3-to-v1"]
    assert "transforms in" in invoke(registry_app, "list").stdout
    assert "v1-to-v2" in invoke(registry_app, "show", "v1-to-v2").stdout
    one_line_error(invoke(registry_app, "rm", "v3"), "end of transform")
    assert invoke(registry_app, "rm", "v1-to-v3").exit_code == 0
    assert invoke(registry_app, "rm", "v3-to-v1").exit_code == 0
    assert invoke(registry_app, "rm", "v3").exit_code == 0  # no transform holds it any more
    assert not (tenv.root / "transforms" / "v1-to-v3").exists()
    one_line_error(invoke(registry_app, "show", "v1-to-v3"), "was removed")


def test_matrix_shows_the_edge_as_its_recorded_figure(tenv):
    """`registry compat --matrix`: a "v1 via h" row against v2's gallery, equal to the edge's table."""
    from harmony.registry.matrix import version_matrices

    e = tenv.reg.get_transform("v1-to-v2")
    for row in e.metrics["test"]["rows"]:
        mats = version_matrices(tenv.reg, row["far"], dataset=e.metrics["test"]["dataset"])
        assert len(mats) == 1
        cell = mats[0].cell("v1 via v1-to-v2", "v2")
        assert cell is not None and cell.source == "transform" and cell.val == row["val_to_mapped"]
        assert mats[0].cell("v1 via v1-to-v2", "v1") is None  # never inferred
