"""`harmony eval --against`: gain recovered, the top-1 verdict and the negative flips, equal to the
metrics computed on directly embedded images; shown in the tables, all ids in --json and the registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harmony.data.folder import scan_folder
from harmony.evaluation import evaluate, folder_set, synthetic_set
from harmony.metrics import flip_report, gain_recovered
from harmony.models.encode import encode_array
from tests.evaluation.conftest import write_faces
from tests.evaluation.test_eval_cli import invoke

pytestmark = pytest.mark.filterwarnings("ignore::harmony.metrics.MetricsWarning")


def test_flips_on_a_folder_list_relative_paths_and_skip_unreadable(tmp_path, reg, add_tiny):
    m1, m2 = add_tiny("v1", seed=0), add_tiny("v2", seed=1)
    root = tmp_path / "faces"
    paths = write_faces(root, 6, 4)
    paths[5].write_bytes(b"\x89PNG broken")
    res = evaluate(reg, "v2", "v1", folder_set(root), fars=(0.1,), progress=None)

    index = scan_folder(root, min_images=2, verify=False)
    keep = [i for i, p in enumerate(index.paths) if str(p) != str(paths[5])]
    images = np.stack([np.asarray(Image.open(index.paths[i]).convert("RGB")) for i in keep])
    names = np.array(index.identities)[index.labels[keep]]
    ids = [str(Path(index.paths[i]).relative_to(root)) for i in keep]
    want = flip_report(encode_array(m1, images), encode_array(m2, images), names, 1, ids, "v1", "v2")
    assert res.flips == want and res.flip_ids_root == str(root.absolute())
    assert want.n_queries == 6 * 3 - 1 and want.new.n_flips + want.cross.n_flips > 0  # untrained: some flip
    assert all(not i.startswith("/") and i.split("/")[0].startswith("person") for i in want.new.ids)


def test_cli_tables_json_and_registry(reg, add_tiny, monkeypatch):
    from harmony.cli.common import console

    monkeypatch.setattr(console, "width", 250)  # headers and captions on one line each
    add_tiny("v1", seed=0)
    add_tiny("v2", seed=1)
    args = ("--version", "v2", "--against", "v1", "--synthetic", 8, "--per-identity", 3, "--far", 0.1,
            "--registry", reg.root)
    r = invoke(*args, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    row = out["compatibility"]["rows"][0]
    assert row["gain_recovered"] == gain_recovered(row["val_old_old"], row["val_new_old"], row["val_new_new"])
    flips = out["flips"]
    assert flips["ids_root"] is None and flips["n_queries"] == 16  # 8 identities x (3 - 1 gallery image)
    for key in ("new_flips", "cross_flips"):
        f = flips[key]
        assert len(f["ids"]) == f["n_flips"] == sum(f["per_identity"].values())
        assert f["rate"] == f["n_flips"] / 16 and all(isinstance(i, int) for i in f["ids"])
    assert (flips["cross_flips"]["probe"], flips["cross_flips"]["gallery"]) == ("v2", "v1")
    cross = [e for e in reg.evaluations("v2") if e["against"] == "v1"][-1]
    assert cross["metrics"]["flips"] == flips

    r = invoke(*args)
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "gain recovered" in text and "negative flips" in text
    assert "top-1 identification v2->v1" in text and "vs v1->v1" in text
    ident = out["identification"]["rows"]
    top1 = (ident[2]["accuracy"]["1"] >= ident[0]["accuracy"]["1"])
    assert ("at least as well as v1 does" in text) == top1 and ("identify worse than v1 itself" in text) != top1
    f = flips["cross_flips"]
    assert f"{f['n_flips']}" in text and ("-" if not f["ids"] else str(f["ids"][0])) in text


def test_gain_undefined_when_new_is_not_better(reg, add_tiny):
    add_tiny("v1", seed=3)
    add_tiny("v1-copy", seed=3)  # same weights: VAL(new,new) == VAL(old,old), no gain to recover
    res = evaluate(reg, "v1-copy", "v1", synthetic_set(8, 3), fars=(0.1,), progress=None)
    assert res.compat.rows[0].gain_recovered is None
    assert res.flips.new.n_flips == res.flips.cross.n_flips == 0
    from harmony.cli.eval import renderables
    from rich.console import Console

    con = Console(record=True, width=250)
    for part in renderables(res):
        con.print(part)
    text = " ".join(con.export_text().split())  # captions wrap to the table's width
    assert "undefined" in text and "undefined: v1-copy not better than v1 here" in text


def test_version_matrix_cells_are_the_evaluations(reg, add_tiny):
    from harmony.registry.matrix import version_matrices

    for name, seed in (("v1", 0), ("v2", 1), ("v3", 2)):
        add_tiny(name, seed=seed)
    data = synthetic_set(8, 3)
    a = evaluate(reg, "v2", "v1", data, fars=(0.1, 0.01), progress=None)
    b = evaluate(reg, "v3", "v2", data, fars=(0.1,), progress=None)
    (m,) = version_matrices(reg, 0.1)
    assert m.dataset == a.dataset == b.dataset and m.galleries == ("v1", "v2", "v3")
    assert m.cell("v2", "v1").val == a.compat.rows[0].new_old.val
    assert m.cell("v1", "v2").val == a.compat.rows[0].old_new.val
    assert m.cell("v3", "v2").val == b.compat.rows[0].new_old.val
    assert m.cell("v3", "v1") is None and m.cell("v1", "v3") is None  # never measured, never inferred
    for v, res in (("v1", a), ("v2", b), ("v3", b)):  # the diagonal: each version's newest evaluation
        assert m.cell(v, v).source == "evaluation"
        assert m.cell(v, v).val == next(x for x in res.versions if x.name == v).val[0].val
