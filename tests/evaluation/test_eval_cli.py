"""`harmony eval` through typer: tables, --json, --plot, the cache across runs, LFW pairs, and
one-line errors with exit status 2."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from harmony.cli.eval import eval_command
from tests.evaluation.conftest import write_faces
from tests.evaluation.test_evaluate import lfw_fixture

app = typer.Typer()
app.command("eval")(eval_command)


@app.callback()
def _root() -> None:
    """A stand-in for the root app, so the command is invoked as `eval`."""


runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, ["eval", *map(str, args)], catch_exceptions=False)


@pytest.fixture()
def two_versions(reg, add_tiny):
    add_tiny("v1", seed=0)
    add_tiny("v2", seed=1)
    return reg


def test_help_has_an_example():
    r = invoke("--help")
    assert r.exit_code == 0 and "Example:" in r.output and "--against" in r.output


def test_json_plot_and_cache_across_runs(tmp_path, two_versions, count_encodes):
    reg = two_versions
    png = tmp_path / "curves.png"
    args = ("--version", "v2", "--against", "v1", "--synthetic", 6, "--per-identity", 3, "--far", 0.1, "--far", 0.01,
            "--registry", reg.root)
    r = invoke(*args, "--plot", png, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["dataset"] == "synthetic:test:seed0:6x3:32px" and out["fars"] == [0.1, 0.01]
    assert [v["name"] for v in out["versions"]] == ["v2", "v1"]
    assert set(out["compatible"]) == {"0.1", "0.01"} and out["compatibility"]["new"] == "v2"
    cross = out["identification"]["rows"][2]
    assert (cross["probe"], cross["gallery"]) == ("v2", "v1") and set(cross["accuracy"]) == {"1", "5"}
    assert png.read_bytes()[:4] == b"\x89PNG" and out["plot"] == str(png)
    assert sum(count_encodes) == 36  # 18 images by each version

    count_encodes.clear()
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert count_encodes == []  # both versions from the cache
    assert "v2 from the cache, v1 from the cache" in r.output
    for title in ("VAL@FAR", "leave-one-out", "clustering", "compatibility v2 -> v1", "v2 -> v1"):
        assert title in r.output
    assert len(reg.evaluations("v2")) == 4 and len(reg.compatibility("v2", "v1")) == 2


def test_lfw_pairs_missing_image_listed(tmp_path, reg, add_tiny):
    add_tiny("v1")
    root, pairs = lfw_fixture(tmp_path, missing=True)
    r = invoke("--version", "v1", "--lfw-pairs", pairs, "--data", root, "--registry", reg.root)
    assert r.exit_code == 2 and "person00_0007" in r.output and "--allow-missing" in r.output
    r = invoke("--version", "v1", "--lfw-pairs", pairs, "--data", root, "--allow-missing", "--registry", reg.root)
    assert r.exit_code == 0, r.output
    assert "LFW protocol" in r.output and "+-" in r.output and "1 missing image(s), their pairs skipped" in r.output
    assert "person00_0007" in r.output


def test_image_folder_lists_unreadable_files(tmp_path, reg, add_tiny):
    add_tiny("v1")
    paths = write_faces(tmp_path / "faces", 3, 3)
    paths[2].write_bytes(b"truncated")
    r = invoke("--version", "v1", "--data", tmp_path / "faces", "--far", 0.1, "--registry", reg.root)
    assert r.exit_code == 0, r.output
    assert "1 unreadable image(s), skipped:" in r.output and str(paths[2]) in r.output
    assert "(8 images, 3 identities)" in r.output


def test_pairs_csv(tmp_path, reg, add_tiny):
    add_tiny("v1")
    paths = write_faces(tmp_path / "faces", 4, 2)
    rows = ["path_a,path_b,same"]
    rel = [p.relative_to(tmp_path / "faces") for p in paths]
    for i in range(4):  # a matched pair with relative paths, a mismatched one with absolute paths
        rows.append(f"{rel[2 * i]},{rel[2 * i + 1]},1")
        rows.append(f"{paths[2 * i]},{paths[(2 * i + 2) % 8]},0")
    csv = tmp_path / "faces" / "pairs.csv"
    csv.write_text("\n".join(rows) + "\n")
    r = invoke("--version", "v1", "--pairs-csv", csv, "--far", 0.5, "--json", "--registry", reg.root)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["kind"] == "pairs" and out["n_pairs"] == 8 and out["versions"][0]["lfw"]["n_folds"] == 8


@pytest.mark.parametrize("args, message", [
    ((), "exactly one of --data DIR and --synthetic N"),
    (("--synthetic", 4, "--data", "somewhere"), "--data and --synthetic both given"),
    (("--synthetic", 4, "--version", "nope"), "'nope'"),
    (("--synthetic", 4, "--against", "wide"), "16-D and 'wide' in 32-D"),
    (("--synthetic", 4, "--far", 2), "outside (0, 1]"),
    (("--lfw-pairs", "pairs.txt"), "--lfw-pairs needs --data"),
    (("--data", "faces", "--size", 40), "--size applies to --synthetic only"),
])
def test_one_line_errors(reg, add_tiny, args, message):
    add_tiny("v1")
    add_tiny("wide", dim=32)
    if "--version" not in args:
        args = ("--version", "v1", *args)
    r = invoke(*args, "--registry", reg.root)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.output
    assert reg.evaluations() == []
