"""`harmony gallery ...` through typer's CliRunner on the sub-app: outputs, JSON, exit codes."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from harmony.cli.gallery import app
from tests.gallery.helpers import brute_force, direct_vectors, env, record_verdict, shared_versions  # noqa: F401

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def as_json(*args):
    r = invoke(*args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_every_command_has_an_example():
    for cmd in ("build", "add", "remove", "search", "info", "list"):
        r = invoke(cmd, "--help")
        assert r.exit_code == 0 and "Example:" in r.output and "--registry" in r.output


def test_build_info_list_search(env):
    r = invoke("build", "--name", "prod", "--version", "v1", "--data", env.faces, "--codec", "sq8", "--far", "0.01")
    assert r.exit_code == 0, r.output
    assert "48 items of 12 identities" in r.stdout and "codec sq8" in r.stdout
    info = as_json("info", "--name", "prod", "--items", "2")
    assert info["gallery"]["version"] == "v1" and info["gallery"]["far"] == 0.01
    assert info["store"]["n_items"] == 48 and info["store"]["codec"] == "sq8" and info["warnings"] == []
    assert [i["item_id"] for i in info["items"]] == ["id000/000.png", "id000/001.png"]
    listed = as_json("list")
    assert [g["gallery"]["name"] for g in listed] == ["prod"] and listed[0]["store"]["active"] == "v1"
    assert "prod" in invoke("list").stdout and "serving version" in invoke("info", "--name", "prod").stdout

    out = as_json("search", "--name", "prod", "--query", env.faces / "id004", "-k", "3")
    assert (out["mode"], out["query_version"], len(out["results"])) == ("direct", "v1", 4)
    files = sorted(env.faces.glob("*/*.png"))
    names = [str(f.relative_to(env.faces)) for f in files]
    queries = [r["query"] for r in out["results"]]
    expected = brute_force(direct_vectors(env.reg, "v1", queries), direct_vectors(env.reg, "v1", files), names, 3)
    for res, exp in zip(out["results"], expected):
        assert [h["rank"] for h in res["hits"]] == [1, 2, 3]
        assert res["hits"][0]["item_id"] == exp[0][0]  # the query itself (sq8: distance ~0)
        assert res["hits"][0]["identity"] == "id004"
        np.testing.assert_allclose([h["distance"] for h in res["hits"]], [d for _, d in exp], atol=0.02)
    table = invoke("search", "--name", "prod", "--query", env.faces / "id004" / "002.png").stdout
    assert "id004/002.png" in table and "distance" in table


def test_other_version_refused_in_one_line_then_allowed_with_a_verdict(env):
    assert invoke("build", "--name", "prod", "--version", "v1", "--data", env.faces).exit_code == 0
    q = env.faces / "id001" / "000.png"
    r = invoke("search", "--name", "prod", "--query", q, "--version", "v2")
    assert r.exit_code == 2 and r.stdout == ""
    line = " ".join(r.stderr.split())
    assert line.startswith("error: v2 queries cannot search") and "FAR 0.001" in line
    assert "harmony migrate gallery --gallery prod --to v2" in line
    record_verdict(env.reg, "v2", "v1", 1e-3, True)
    out = as_json("search", "--name", "prod", "--query", q, "--version", "v2", "-k", "2")
    assert out["mode"] == "cross" and all(h["version"] == "v1" for h in out["results"][0]["hits"])
    r = invoke("search", "--name", "prod", "--query", q, "--version", "v8")
    assert r.exit_code == 2 and "8 dimensions" in r.stderr


def test_add_remove_and_errors(env):
    assert invoke("build", "--name", "prod", "--version", "v1", "--data", env.faces).exit_code == 0
    bad = env.tmp / "extra" / "bob" / "x.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x89PNG broken")
    out = as_json("add", "--name", "prod", env.faces / "id002" / "003.png", bad, "--identity", "bob")
    assert (out["added"], out["replaced"], out["unreadable"]) == (1, 0, [str(bad)])
    assert as_json("remove", "--name", "prod", "bob/003.png")["removed"] == ["bob/003.png"]
    out = as_json("remove", "--name", "prod", "id011")
    assert len(out["removed"]) == 4
    assert as_json("info", "--name", "prod")["store"]["n_items"] == 44
    for args in (["info", "--name", "nope"], ["remove", "--name", "prod", "nope/1.png"],
                 ["build", "--name", "prod", "--version", "v1", "--data", env.faces],
                 ["build", "--name", "x", "--version", "v9", "--data", env.faces],
                 ["build", "--name", "x", "--version", "v1", "--data", env.tmp / "missing"]):
        r = invoke(*args)
        assert r.exit_code == 2 and r.stderr.startswith("error:"), (args, r.output)
