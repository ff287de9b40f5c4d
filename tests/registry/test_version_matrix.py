"""The version matrix: its cells are the recorded evaluations and compatibility rows (newest wins,
never inferred), one matrix per dataset; `harmony registry compat --matrix` renders, --json, --png."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from harmony.cli.registry import app
from harmony.errors import InvalidInput
from harmony.registry.matrix import ProbeKind, version_matrices

runner = CliRunner()


def run(reg, *args: str, code: int = 0):
    result = runner.invoke(app, [*map(str, args), "--registry", str(reg.root)])
    assert result.exit_code == code, result.output
    return result


def cells(oo, nn, no, on):
    return {"old_old": oo, "new_new": nn, "new_old": no, "old_new": on}


@pytest.fixture()
def measured(reg, add):
    for name in ("v1", "v2", "v3", "v4"):
        add(name)
    reg.record_evaluation("v1", "ds-a", {"val@0.001": 0.80, "val@0.01": 0.90})
    reg.record_evaluation("v1", "ds-a", {"val@0.001": 0.81})  # newer: wins
    reg.record_evaluation("v2", "ds-a", {"val@0.001": 0.85})
    reg.record_evaluation("v2", "ds-a", {"val@0.001": 0.99, "compatibility": {}}, against="v1")  # a cross row: no
    reg.record_compatibility("v2", "v1", "ds-a", 1e-3, cells(0.80, 0.86, 0.70, 0.71), False)
    reg.record_compatibility("v2", "v1", "ds-a", 1e-3, cells(0.81, 0.85, 0.82, 0.83), True)  # re-measured: wins
    reg.record_compatibility("v3", "v2", "ds-a", 1e-3, cells(0.85, 0.88, 0.86, 0.84), True)
    reg.record_compatibility("v3", "v1", "ds-a", 1e-2, cells(0.9, 0.95, 0.91, 0.9), True)  # another FAR
    reg.record_compatibility("v4", "v1", "ds-b", 1e-3, cells(0.60, 0.70, 0.65, 0.64), True)
    return reg


def test_cells_are_the_recorded_rows_and_nothing_is_inferred(measured):
    ma, mb = version_matrices(measured, 1e-3)
    assert (ma.dataset, mb.dataset) == ("ds-a", "ds-b") and ma.far == 1e-3
    assert [p.label for p in ma.probes] == list(ma.galleries) == ["v1", "v2", "v3"]
    want = {("v1", "v1"): (0.81, "evaluation"), ("v2", "v2"): (0.85, "evaluation"),
            ("v3", "v3"): (0.88, "compatibility"),  # no evaluation of v3: its compatibility row's new_new
            ("v2", "v1"): (0.82, "compatibility"), ("v1", "v2"): (0.83, "compatibility"),
            ("v3", "v2"): (0.86, "compatibility"), ("v2", "v3"): (0.84, "compatibility")}
    assert {k: (c.val, c.source) for k, c in ma.cells.items()} == want
    assert ma.cell("v3", "v1") is None and ma.cell(ProbeKind("v1"), "v3") is None  # v3~v2~v1 says nothing
    np.testing.assert_array_equal(np.isnan(ma.values()), [[0, 0, 1], [0, 0, 0], [1, 0, 0]])
    assert ma.n_cross == 4
    # the source rows, read back with plain SQL
    _, rows = measured.query("SELECT id, val_new_old FROM compatibility WHERE new_version = 'v2' ORDER BY id DESC")
    assert (ma.cell("v2", "v1").record_id, ma.cell("v2", "v1").val) == rows[0]
    ev = [e for e in measured.evaluations("v1")][-1]
    assert (ma.cell("v1", "v1").record_id, ma.cell("v1", "v1").val) == (ev["id"], ev["metrics"]["val@0.001"])
    assert [p.label for p in mb.probes] == ["v1", "v4"] and not np.isnan(mb.values()).any()
    assert mb.cell("v1", "v1").val == 0.60 and mb.cell("v1", "v4").val == 0.64

    (m2,) = version_matrices(measured, 1e-2)  # at 1e-2 only the v3-v1 row, the v1 evaluation on ds-a
    assert {k: c.val for k, c in m2.cells.items()} == {("v3", "v1"): 0.91, ("v1", "v3"): 0.9, ("v1", "v1"): 0.90,
                                                       ("v3", "v3"): 0.95}
    assert [m.dataset for m in version_matrices(measured, 1e-3, "ds-b")] == ["ds-b"]
    assert version_matrices(measured, 0.5) == []
    assert ProbeKind("v1", via="h").label == "v1 via h"
    with pytest.raises(InvalidInput, match="--far 2 is outside"):
        version_matrices(measured, 2)


def test_cli_matrix_table_json_and_png(measured, tmp_path, monkeypatch):
    from PIL import Image

    from harmony.cli.common import console

    monkeypatch.setattr(console, "width", 250)
    text = " ".join(run(measured, "compat", "--matrix").stdout.split())
    assert "VAL@FAR=0.001 on ds-a" in text and "VAL@FAR=0.001 on ds-b" in text
    assert text.count("unmeasured") == 2 and "82.00%" in text and "81.00%" in text
    out = json.loads(run(measured, "compat", "--matrix", "--json").stdout)
    assert out["far"] == 1e-3 and out["png"] is None
    a = out["matrices"][0]
    assert a["probes"] == ["v1", "v2", "v3"] and a["values"][2][0] is None and a["values"][1][0] == 0.82
    assert {(c["probe"], c["gallery"]): c["source"] for c in a["cells"]}[("v1", "v1")] == "evaluation"

    from matplotlib.colors import to_rgb

    from harmony.metrics.plots import UNMEASURED_GREY

    grey = int(to_rgb(UNMEASURED_GREY)[0] * 255)  # Agg truncates: 0.85 -> 216

    def grey_pixels(path) -> int:
        px = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)
        return int((np.abs(px - grey) <= 1).all(axis=1).sum())

    png = tmp_path / "m.png"
    assert "heat map written to" in run(measured, "compat", "--matrix", "--png", png).stdout
    assert png.read_bytes()[:4] == b"\x89PNG" and grey_pixels(png) > 10_000  # two grey cells of ~120 x 120 px
    full = tmp_path / "b.png"
    out = json.loads(run(measured, "compat", "--matrix", "--dataset", "ds-b", "--png", full, "--json").stdout)
    assert out["png"] == str(full) and [m["dataset"] for m in out["matrices"]] == ["ds-b"]
    assert grey_pixels(full) < 500  # every cell measured (a few anti-aliased text edges)

    none = tmp_path / "none.png"
    r = run(measured, "compat", "--matrix", "--far", "0.5", "--png", none, code=2)
    assert "no cross-version VAL measured at FAR 0.5: nothing to draw" in r.output and not none.exists()
    assert "no cross-version VAL measured at FAR 0.5" in run(measured, "compat", "--matrix", "--far", "0.5").output


def test_cli_errors_and_the_pair_view_gain(measured):
    assert "takes no NEW OLD" in run(measured, "compat", "v2", "v1", "--matrix", code=2).output
    assert "needs NEW and OLD (or --matrix)" in run(measured, "compat", code=2).output
    assert "add --matrix" in run(measured, "compat", "v2", "v1", "--png", "x.png", code=2).output
    assert "--far 2 is outside (0, 1]" in run(measured, "compat", "--matrix", "--far", "2", code=2).output
    rows = json.loads(run(measured, "compat", "v2", "v1", "--json").stdout)
    assert rows[0]["gain_recovered"] == pytest.approx((0.82 - 0.81) / (0.85 - 0.81))
    rows = json.loads(run(measured, "compat", "v3", "v1", "--far", "0.001", "--json").stdout)
    assert rows == []
    rows = json.loads(run(measured, "compat", "v3", "v1", "--far", "0.01", "--dataset", "ds-a", "--json").stdout)
    assert [r["far"] for r in rows] == [0.01]
    measured.record_compatibility("v4", "v2", "ds-a", 1e-3, cells(0.9, 0.8, 0.85, 0.85), True)  # v4 worse
    assert json.loads(run(measured, "compat", "v4", "v2", "--json").stdout)[0]["gain_recovered"] is None
    text = " ".join(run(measured, "compat", "v4", "v2").stdout.split())
    assert "undefined" in text and "gain recovered" in text
