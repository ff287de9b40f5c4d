"""The migration report's gain recovered and negative flips (item ids) equal the metrics on directly
embedded images; `harmony migrate swap --max-flip-rate` refuses above the report's after-swap rate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from harmony.cli.migrate import app
from harmony.cli.render_migration import report_renderables
from harmony.gallery.catalog import build_gallery, open_gallery
from harmony.metrics import flip_report, gain_recovered
from harmony.migration.plan import plan_migration
from harmony.migration.run import run_migration
from harmony.migration.states import advance, latest_migration
from tests.gallery.helpers import direct_vectors, write_faces

pytestmark = pytest.mark.filterwarnings("ignore::harmony.metrics.MetricsWarning")
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_report_flips_are_the_metric_on_direct_vectors_by_item_id(env):
    build_gallery(env.reg, "G", "v1", env.faces, far=0.3)
    rep = run_migration(env.reg, plan_migration(env.reg, "G", "v2"), batch_size=16).report
    _, store = open_gallery(env.reg, "G")
    ids = [str(i) for i in store.items().item_ids]  # the report's row order: the gallery's
    files = [env.faces / i for i in ids]
    labels = np.array([f.parent.name for f in files])
    want = flip_report(direct_vectors(env.reg, "v1", files), direct_vectors(env.reg, "v2", files), labels, 1, ids,
                       "v1", "v2").as_dict()
    got = rep["flips"]
    assert (got["n_queries"], got["n_gallery"]) == (want["n_queries"], want["n_gallery"]) == (36, 12)
    assert got["n_old_correct"] == want["n_old_correct"]
    for key in ("new_flips", "cross_flips"):
        assert got[key] == want[key]  # stored flat vectors equal direct ones to ~1e-7: same decisions
    assert all(i in ids for i in got["cross_flips"]["ids"]) and got["new_flips"]["n_flips"] > 0
    for row in rep["verification"]:
        assert row["gain_recovered"] == gain_recovered(row["before"], row["cross"], row["after"])


def test_eval_data_flips_name_paths_under_the_folder_and_render(env):
    other = write_faces(env.tmp / "eval", 6, 3, seed=5)
    build_gallery(env.reg, "G", "v1", env.faces, far=0.3)
    rep = run_migration(env.reg, plan_migration(env.reg, "G", "v2"), batch_size=16, eval_data=other).report
    flips = rep["flips"]
    assert flips["n_queries"] == 12 and all((other / i).is_file() for k in ("new_flips", "cross_flips")
                                            for i in flips[k]["ids"])
    assert all(name.startswith("id") for name in flips["cross_flips"]["per_identity"])
    from rich.console import Console

    con = Console(record=True, width=250)
    for part in report_renderables(rep):
        con.print(part)
    text = " ".join(con.export_text().split())
    for words in ("gain recovered", "top-1 identification v2->v1", "negative flips",
                  "every id in `harmony migrate status --json`"):
        assert words in text, words
    old = {k: v for k, v in rep.items() if k != "flips"} | {"flips_error": "no probes"}
    assert "negative flips: not measured (no probes)" in [p for p in report_renderables(old) if isinstance(p, str)]


def test_swap_refused_above_the_max_flip_rate(env):
    build_gallery(env.reg, "prod", "v1", env.faces)
    r = invoke("gallery", "--gallery", "prod", "--to", "v3", "--max-flip-rate", "0.1")
    assert r.exit_code == 2 and "--max-flip-rate gates the swap, and --swap is not given" in r.stderr
    assert env.reg.migrations("prod") == []
    r = invoke("gallery", "--gallery", "prod", "--to", "v3", "--swap", "--max-flip-rate", "0", "--json")
    mig = latest_migration(env.reg, "prod")
    f = mig.report["flips"]["new_flips"]
    assert f["n_flips"] > 0  # unrelated random versions: some of v1's hits are lost
    err = " ".join(r.stderr.split())
    assert r.exit_code == 2 and f"negative flip rate after the swap is {f['rate']:.2%}" in err, r.output
    assert "v3 -> v3" in err and "above --max-flip-rate 0; nothing swapped" in err
    assert mig.state == "ready" and env.reg.get_gallery("prod").version == "v1"
    assert open_gallery(env.reg, "prod")[1].active_version == "v1"

    r = invoke("swap", "--gallery", "prod", "--max-flip-rate", "1.2")
    assert r.exit_code == 2 and "--max-flip-rate must be a number in [0, 1], got 1.2" in r.stderr
    r = invoke("swap", "--gallery", "prod", "--max-flip-rate", f"{f['rate'] / 2:.6f}")
    assert r.exit_code == 2 and "nothing swapped" in r.stderr
    out = json.loads(invoke("swap", "--gallery", "prod", "--max-flip-rate", repr(f["rate"]), "--json").stdout)
    assert out["action"] == "swapped" and out["active"] == "v3"  # at the measured rate: not above it


def test_swap_with_max_flip_rate_needs_a_measured_rate(env):
    build_gallery(env.reg, "prod", "v1", env.faces)
    out = run_migration(env.reg, plan_migration(env.reg, "prod", "v3"), batch_size=16)
    advance(env.reg, out.migration.id, report={k: v for k, v in out.report.items() if k != "flips"})
    r = invoke("swap", "--gallery", "prod", "--max-flip-rate", "0.5")
    assert r.exit_code == 2 and "has no negative flip rate to compare" in r.stderr
    assert "swap without --max-flip-rate" in r.stderr
    assert invoke("swap", "--gallery", "prod").exit_code == 0  # without the gate it swaps
