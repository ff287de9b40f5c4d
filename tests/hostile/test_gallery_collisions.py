"""Item 7: `gallery add` of a second folder whose <identity>/<file> ids collide with items from
other files is refused (exit 2, one line, gallery unchanged) unless --replace; re-adding the same
files stays an idempotent replace."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from harmony.cli.gallery import app
from harmony.gallery.catalog import build_gallery, open_gallery
from tests.gallery.helpers import env, shared_versions, write_faces  # noqa: F401  (fixtures)
from tests.hostile.conftest import tree_digest

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_colliding_ids_need_replace(env):
    build_gallery(env.reg, "G", "v1", env.faces)
    other = write_faces(env.tmp / "other", 3, 4, seed=7)  # id000..id002/000..003.png: other photos, same ids
    gallery = env.root / "galleries" / "G"
    before = tree_digest(gallery)

    r = invoke("add", "--name", "G", other)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: 12 item id(s)"), r.output
    assert "'id000/000.png'" in lines[0] and "--replace" in lines[0]
    assert tree_digest(gallery) == before

    r = invoke("add", "--name", "G", other, "--replace", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["added"], out["replaced"]) == (0, 12)
    t = open_gallery(env.reg, "G")[1].items()
    assert len(t) == 48 and str(t.sources[t.row_of_item["id000/000.png"]]) == str((other / "id000" / "000.png").absolute())
    assert "0 added, 12 replaced" in invoke("add", "--name", "G", other, "--replace").output


def test_re_adding_the_same_files_is_not_a_collision(env):
    build_gallery(env.reg, "G", "v1", env.faces)
    r = invoke("add", "--name", "G", env.faces / "id003", env.faces / "id004" / "000.png")
    assert r.exit_code == 0 and "0 added, 5 replaced" in r.output, r.output
    extra = write_faces(env.tmp / "new", 14, 1, first_image=9)  # id012, id013: new ids; id000..: 009.png, new too
    r = invoke("add", "--name", "G", extra, "--json")
    assert r.exit_code == 0, r.output
    assert (json.loads(r.stdout)["added"], json.loads(r.stdout)["replaced"]) == (14, 0)
