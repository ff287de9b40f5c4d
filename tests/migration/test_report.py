"""The migration report equals the metrics computed on directly embedded images, whichever way its
vectors were obtained: stored (flat), re-embedded (IVF keeps none), an --eval-data folder, a sample."""

from __future__ import annotations

import numpy as np
import pytest

from harmony.metrics import compatibility_report
from harmony.gallery.catalog import build_gallery
from harmony.migration.run import run_migration
from harmony.migration.plan import plan_migration
from harmony.cli.render_migration import report_renderables
from tests.gallery.helpers import direct_vectors, write_faces


def twin_rows(reg, files, fars):
    labels = np.array([f.parent.name for f in files])
    rep = compatibility_report(direct_vectors(reg, "v1", files), direct_vectors(reg, "v2", files), labels, fars)
    return [v for r in rep.rows for v in (r.old_old.val, r.new_old.val, r.new_new.val)]


def got_rows(report):
    return [v for r in report["verification"] for v in (r["before"], r["cross"], r["after"])]


def test_ivf_gallery_report_reembeds_the_sources(env):
    build_gallery(env.reg, "G", "v1", env.faces, codec="ivf", far=0.3)  # a FAR where VAL is not 0
    out = run_migration(env.reg, plan_migration(env.reg, "G", "v2"), batch_size=16)
    rep = out.report
    assert rep["vectors"].startswith("re-embedded") and rep["n_items"] == 48 and not rep["sampled"]
    assert rep["fars"] == [0.3, 1e-2, 1e-3] and rep["verification"][0]["before"] > 0
    files = sorted(env.faces.glob("*/*.png"))
    assert got_rows(rep) == pytest.approx(twin_rows(env.reg, files, rep["fars"]), abs=1e-6)


@pytest.mark.filterwarnings("ignore::harmony.metrics.MetricsWarning")
def test_eval_data_folder_and_sampling(env):
    other = write_faces(env.tmp / "eval", 6, 3, seed=5)
    build_gallery(env.reg, "G", "v1", env.faces, far=0.3)
    out = run_migration(env.reg, plan_migration(env.reg, "G", "v2"), batch_size=16, eval_data=other)
    rep = out.report
    assert rep["data"] == str(other.absolute()) and rep["n_items"] == 18 and rep["n_identities"] == 6
    assert got_rows(rep) == pytest.approx(twin_rows(env.reg, sorted(other.glob("*/*.png")), rep["fars"]), abs=1e-6)
    assert env.reg.get_migration(out.migration.id).report == rep

    from harmony.gallery.catalog import open_gallery
    from harmony.migration.report import migration_report

    _, store = open_gallery(env.reg, "G")
    small = migration_report(store, "v1", "v2", 1e-3, max_items=20, seed=3)
    assert small["sampled"] and small["n_items"] == 20 and small["candidates"] == 48
    assert small == migration_report(store, "v1", "v2", 1e-3, max_items=20, seed=3)  # seeded
    parts = report_renderables(small)
    tables = [p for p in parts if hasattr(p, "columns")]  # verification, identification, flips
    assert len(tables) == 3 and [p for p in parts if isinstance(p, str)][0].startswith("top-1 identification")
    assert report_renderables({}) == ["no report yet: it is computed when the backfill completes"]
