"""`harmony migrate gallery --order/--seed` (plan panel, registry row, status, resume keeps the
order, refusals) and `harmony migrate curve` (JSON equals the library over the gallery's vectors,
PNG, nothing written)."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from harmony.cli.migrate import app
from harmony.gallery.catalog import build_gallery, open_gallery
from harmony.migration.curve import order_curves
from harmony.migration.plan import plan_migration
from harmony.migration.states import begin
from tests.gallery.helpers import direct_vectors, env, record_verdict, shared_versions  # noqa: F401

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def as_json(*args):
    r = invoke(*args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def flat(text: str) -> str:
    return " ".join(text.translate({ord(c): " " for c in "│╭╮╰╯─┃┏┓┗┛━"}).split())


def snapshot(env) -> dict:
    files = {str(p.relative_to(env.root)): (p.stat().st_size, p.stat().st_mtime_ns)
             for p in env.root.rglob("*") if p.is_file() and not p.name.endswith((".wal", ".lock"))}
    return {"files": files, "migrations": env.reg.migrations(), "galleries": env.reg.list_galleries()}


def test_order_is_planned_shown_recorded_and_kept_on_resume(env):
    build_gallery(env.reg, "prod", "v1", env.faces)
    record_verdict(env.reg, "v2", "v1", 1e-3, True)
    r = invoke("gallery", "--gallery", "prod", "--to", "v2", "--order", "random", "--seed", "5",
               "--batch-size", "8", "--max-batches", "1", "--quiet")
    assert r.exit_code == 0, r.output
    assert "backfill order: random order (seed 5)" in flat(r.stdout)
    mig = env.reg.migrations("prod")[-1]
    assert (mig.plan["order"], mig.plan["seed"], mig.state) == ("random", 5, "backfilling")
    st = as_json("status", "--gallery", "prod")
    assert (st["backfill"]["order"], st["backfill"]["seed"], st["backfill"]["done"]) == ("random", 5, 8)
    assert "backfill order of migration #1: random (seed 5)" in flat(invoke("status", "--gallery", "prod").stdout)
    for other in (["--order", "uncertainty"], ["--order", "random", "--seed", "6"]):
        r = invoke("gallery", "--gallery", "prod", "--to", "v2", *other)
        assert r.exit_code == 2 and "backfills in random (seed 5) order; it cannot change" in r.stderr, r.output
        assert len(r.stderr.strip().splitlines()) <= 3  # the error and its hint, no traceback
    assert env.reg.migrations("prod")[-1].cursor == 8  # refused before anything ran
    out = as_json("gallery", "--gallery", "prod", "--to", "v2", "--batch-size", "8")  # no --order: the one in flight
    assert out["plan"]["order"] == "random" and out["plan"]["seed"] == 5 and out["migration"]["state"] == "ready"
    assert out["backfill"]["n_resumed"] == 8 and out["backfill"]["n_embedded"] == 40


def test_a_migration_killed_before_its_first_cursor_keeps_the_order_of_its_registry_row(env):
    build_gallery(env.reg, "prod", "v1", env.faces)
    record_verdict(env.reg, "v2", "v1", 1e-3, True)
    plan = plan_migration(env.reg, "prod", "v2", order="uncertainty")
    assert plan.score == "identity-centres" and "uncertainty order (identity-centres" in plan.order_text()
    begin(env.reg, "prod", "v1", "v2", plan.as_dict())  # the row exists, the backfill never started
    again = plan_migration(env.reg, "prod", "v2")
    assert (again.order.policy, again.resume) == ("uncertainty", 1)
    r = invoke("gallery", "--gallery", "prod", "--to", "v2", "--order", "sequential", "--dry-run")
    assert r.exit_code == 2 and "backfills in uncertainty order" in r.stderr


def test_bad_orders_and_ivf_uncertainty_are_refused(env):
    r = invoke("gallery", "--gallery", "prod", "--to", "v2", "--order", "fastest")
    assert r.exit_code == 2 and "unknown order 'fastest'" in r.output
    r = invoke("curve", "--gallery", "prod", "--to", "v2", "--orders", "random,sideways")
    assert r.exit_code == 2 and "unknown order(s) sideways" in r.output
    build_gallery(env.reg, "big", "v1", env.faces, codec="ivf")
    record_verdict(env.reg, "v2", "v1", 1e-3, True)
    r = invoke("gallery", "--gallery", "big", "--to", "v2", "--order", "uncertainty", "--dry-run")
    assert r.exit_code == 2 and "codec ivf keeps none" in r.stderr and "--order random" in r.stderr


def test_curve_json_equals_the_library_over_the_gallery_vectors_and_writes_nothing(env):
    build_gallery(env.reg, "prod", "v1", env.faces)
    before = snapshot(env)
    png = env.tmp / "curve.png"
    out = as_json("curve", "--gallery", "prod", "--to", "v2", "--steps", "4", "--seed", "2", "--far", "0.01",
                  "--png", png)
    assert snapshot(env) == before  # no registry row, no index, no checkpoint
    assert png.read_bytes()[:4] == b"\x89PNG" and out["png"] == str(png)
    _, store = open_gallery(env.reg, "prod")
    t = store.items()
    rows = np.argsort(t.seqs, kind="stable")
    names = [str(s) for s in t.item_ids[rows]]
    old = store.vectors(names, "v1")
    new = direct_vectors(env.reg, "v2", [str(s) for s in t.sources[rows]])
    ref = order_curves(old, new, t.labels[rows].astype(str), seed=2, far=0.01, steps=4).as_dict()
    assert [c["order"] for c in out["curves"]] == ["sequential", "random", "uncertainty"]
    for got, want in zip(out["curves"], ref["curves"]):
        assert got["fractions"] == [0, 0.25, 0.5, 0.75, 1.0]
        np.testing.assert_allclose(got["top1"], want["top1"], atol=1e-12)
        np.testing.assert_allclose(got["val"], want["val"], atol=1e-12)
    assert (out["n_items"], out["n_identities"], out["score"], out["source"], out["target"]) == \
        (48, 12, "identity-centres", "v1", "v2")
    r = invoke("curve", "--gallery", "prod", "--to", "v2", "--steps", "2", "--orders", "random,uncertainty")
    assert r.exit_code == 0, r.output
    text = flat(r.stdout)
    assert "area under each curve" in text and "uncertainty - random:" in text and "random (seed 0)" in text
    assert out["mixed_served"] is False and "the product serves no mixed search here" in text  # no verdict yet
    record_verdict(env.reg, "v2", "v1", 1e-3, True)
    assert as_json("curve", "--gallery", "prod", "--to", "v2", "--steps", "2")["mixed_served"] is True


def test_curve_refusals_are_one_line_errors(env):
    build_gallery(env.reg, "prod", "v1", env.faces)
    r = invoke("curve", "--gallery", "prod", "--to", "v1")
    assert r.exit_code == 2 and "already serves v1" in r.stderr
    r = invoke("curve", "--gallery", "prod", "--to", "v2", "--far", "2")
    assert r.exit_code == 2 and "--far 2 is outside (0, 1]" in r.stderr
    r = invoke("curve", "--gallery", "prod", "--to", "v2", "--png", env.tmp / "no" / "such" / "c.png")
    assert r.exit_code == 2 and "does not exist" in r.stderr
    r = invoke("curve", "--gallery", "prod", "--to", "v8")
    assert r.exit_code != 0 and "dimension" in r.stderr
    assert "Example: harmony migrate curve" in invoke("curve", "--help").output
