"""`harmony migrate ...` through typer's CliRunner on the sub-app: plan, dry run, partial and full
runs, mixed search from `harmony gallery search`, status, swap, rollback, gc, refusals, JSON."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from harmony.cli.gallery import app as gallery_app
from harmony.cli.migrate import app
from harmony.gallery.catalog import build_gallery
from tests.gallery.helpers import env, record_verdict, shared_versions  # noqa: F401

runner = CliRunner()


def invoke(*args, on=app):
    return runner.invoke(on, [str(a) for a in args], catch_exceptions=False)


def as_json(*args, on=app):
    r = invoke(*args, "--json", on=on)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def flat(text: str) -> str:
    """Rendered output as one line of words (panel borders and wrapping removed)."""
    return " ".join(text.translate({ord(c): " " for c in "│╭╮╰╯─┃┏┓┗┛━"}).split())


def snapshot(env) -> dict:
    files = {str(p.relative_to(env.root)): (p.stat().st_size, p.stat().st_mtime_ns)
             for p in (env.root / "galleries").rglob("*") if p.is_file()}
    return {"files": files, "migrations": env.reg.migrations(), "galleries": env.reg.list_galleries()}


def test_every_command_has_an_example():
    for cmd in ("gallery", "status", "swap", "rollback", "gc"):
        r = invoke(cmd, "--help")
        assert r.exit_code == 0 and "Example:" in r.output and "--registry" in r.output


def test_dry_run_shows_the_plan_and_changes_nothing(env):
    build_gallery(env.reg, "prod", "v1", env.faces)
    record_verdict(env.reg, "v2", "v1", 1e-2, True)
    record_verdict(env.reg, "v2", "v1", 1e-3, False)
    before = snapshot(env)
    r = invoke("gallery", "--gallery", "prod", "--to", "v2", "--dry-run")
    assert r.exit_code == 0, r.output
    text = flat(r.stdout)
    assert "full backfill before the swap" in text and "passes at FAR 0.01" in text and "nothing changed" in text
    plan = as_json("gallery", "--gallery", "prod", "--to", "v2", "--dry-run")["plan"]
    assert (plan["mode"], plan["far"], plan["n_items"], plan["verdict"]["verdict"]) == ("full-backfill", 1e-3, 48, False)
    assert plan["verdict"]["passing_elsewhere"] == [1e-2]
    assert snapshot(env) == before


def test_compatible_migration_end_to_end(env):
    build_gallery(env.reg, "prod", "v1", env.faces)
    record_verdict(env.reg, "v2", "v1", 1e-3, True)
    out = as_json("gallery", "--gallery", "prod", "--to", "v2", "--batch-size", "10", "--max-batches", "2")
    assert out["plan"]["mode"] == "mixed" and out["migration"]["state"] == "backfilling"
    assert out["backfill"]["n_embedded"] == 20 and out["report"] is None
    hits = as_json("search", "--name", "prod", "--query", env.faces / "id000", "-k", "4", on=gallery_app)
    assert hits["mode"] == "mixed" and hits["query_version"] == "v2"
    versions = {h["version"] for res in hits["results"] for h in res["hits"]}
    assert versions <= {"v1", "v2"} and all(len({h["item_id"] for h in res["hits"]}) == 4 for res in hits["results"])
    st = as_json("status", "--gallery", "prod")
    assert st["latest"]["state"] == "backfilling" and st["backfill"]["done"] == 20 and st["can_rollback"]
    r = invoke("gallery", "--gallery", "prod", "--to", "v3")
    assert r.exit_code == 2 and "already has migration" in r.stderr

    r = invoke("gallery", "--gallery", "prod", "--to", "v2", "--batch-size", "10", "--swap")
    assert r.exit_code == 0, r.output
    text = flat(r.stdout)
    assert "resume migration" in text and "28 embedded in this run (20 done before)" in text
    assert "VAL(v1,v1)" in text and "VAL(v2->v1)" in text and "v2 -> v1" in text, r.stdout
    assert "swapped: gallery prod serves v2" in text
    st = as_json("status", "--gallery", "prod")
    assert (st["latest"]["state"], st["active"], st["previous"]) == ("swapped", "v2", "v1")
    rep = st["latest"]["report"]
    assert rep["n_items"] == 48 and [v["far"] for v in rep["verification"]] == [1e-2, 1e-3]
    assert [r["probe"] + ">" + r["gallery"] for r in rep["identification"]["rows"]] == ["v1>v1", "v2>v2", "v2>v1"]
    assert "swapped" in invoke("status", "--gallery", "prod").stdout
    assert as_json("swap", "--gallery", "prod")["action"] == "already"
    rb = as_json("rollback", "--gallery", "prod")
    assert (rb["action"], rb["active"]) == ("rolled_back", "v1")
    assert as_json("gc", "--gallery", "prod") == {"gallery": "prod", "deleted": ["v2"]}
    r = invoke("rollback", "--gallery", "prod")
    assert r.exit_code == 2 and "nothing to roll back" in r.stderr


def test_incompatible_migration_refuses_mixed_search_until_swap(env):
    build_gallery(env.reg, "prod", "v1", env.faces)
    assert as_json("gallery", "--gallery", "prod", "--to", "v3", "--batch-size", "8",
                   "--max-batches", "1")["plan"]["mode"] == "full-backfill"
    r = invoke("search", "--name", "prod", "--query", env.faces / "id000" / "000.png", "--version", "v3", on=gallery_app)
    assert r.exit_code == 2 and "40 v1 vector(s)" in r.stderr
    assert as_json("search", "--name", "prod", "--query", env.faces / "id000" / "000.png",
                   on=gallery_app)["query_version"] == "v1"
    r = invoke("swap", "--gallery", "prod")
    assert r.exit_code == 2 and "has not finished" in r.stderr
    out = as_json("gallery", "--gallery", "prod", "--to", "v3", "--swap")
    assert out["migration"]["state"] == "swapped" and out["swap"]["active"] == "v3"
    hits = as_json("search", "--name", "prod", "--query", env.faces / "id000" / "000.png", on=gallery_app)
    assert hits["mode"] == "direct" and hits["query_version"] == "v3"


def test_vanished_sources_listed_and_refusals(env):
    build_gallery(env.reg, "prod", "v1", env.faces)
    (env.faces / "id005" / "002.png").unlink()
    r = invoke("gallery", "--gallery", "prod", "--to", "v2", "--swap")
    assert r.exit_code == 2 and "1 item(s)" in r.stderr and "--allow-missing" in r.stderr
    assert "id005/002.png" in r.stderr  # listed before the swap refused
    st = as_json("status", "--gallery", "prod")
    assert st["latest"]["state"] == "ready" and st["latest"]["counts"]["failed_items"][0]["item_id"] == "id005/002.png"
    assert as_json("swap", "--gallery", "prod", "--allow-missing")["missing"] == 1
    for args, msg in ((["gallery", "--gallery", "nope", "--to", "v2"], "no gallery named"),
                      (["gallery", "--gallery", "prod", "--to", "v9"], "no version or alias"),
                      (["gallery", "--gallery", "prod", "--to", "v8"], "8 dimensions"),
                      (["gallery", "--gallery", "prod", "--to", "v2"], "already serves"),
                      (["status", "--gallery", "nope"], "no gallery named")):
        r = invoke(*args)
        assert r.exit_code == 2 and msg in r.stderr, (args, r.output)
