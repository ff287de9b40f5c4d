"""`harmony cluster` (FaceNet Figure 7): every photo lands in exactly one folder, the input is only
read, the threshold comes from the registry or --threshold, and --out is written atomically."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from harmony.cli.main import app
from harmony.evaluation.cluster import components_clusters
from tests.evaluation.conftest import write_faces

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, ["cluster", *map(str, args)], catch_exceptions=False, terminal_width=200)


@pytest.fixture()
def photos(tmp_path, reg, add_tiny):
    add_tiny("v1")
    root = tmp_path / "photos"
    write_faces(root, 4, 3)
    return root


def snapshot(root):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def test_components_are_the_verification_graph():
    x = np.array([[1, 0], [0.995, 0.0999], [0.98, 0.199], [-1, 0]], np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    d01 = np.sum((x[0] - x[1]) ** 2)
    assert list(components_clusters(x, d01 * 1.01)) == [0, 0, 0, 1]  # a chain joins 0-1-2
    assert list(components_clusters(x, d01 * 0.5)) == [0, 1, 2, 3]


def test_threshold_needed_then_taken_from_the_registry(tmp_path, photos, reg):
    r = invoke("--version", "v1", "--data", photos, "--out", tmp_path / "c", "--registry", reg.root)
    assert r.exit_code == 2 and "--threshold" in r.output and not (tmp_path / "c").exists()
    assert runner.invoke(app, ["eval", "--version", "v1", "--synthetic", 4, "--per-identity", 3, "--far", 0.1,
                               "--far", 0.001, "--registry", str(reg.root)]).exit_code == 0
    r = invoke("--version", "v1", "--data", photos, "--out", tmp_path / "c", "--registry", reg.root, "--json")
    assert r.exit_code == 0, r.output
    t = json.loads(r.stdout)["threshold"]
    assert t["evaluation_id"] is not None and t["dataset"].startswith("synthetic:test") and t["far"] == 0.001
    t_eval = reg.evaluations("v1")[-1]["metrics"]["threshold@0.001"]
    assert t["value"] == t_eval


@pytest.mark.parametrize("method", ["agglomerative", "components"])
def test_every_photo_once_input_untouched(tmp_path, photos, reg, method):
    before = snapshot(photos)
    out = tmp_path / "clusters"
    r = invoke("--version", "v1", "--data", photos, "--out", out, "--threshold", 0.05, "--method", method,
               "--min-size", 1, "--score", "--json", "--registry", reg.root)
    assert r.exit_code == 0, r.output
    run = json.loads(r.stdout)
    members = [m for c in run["clusters"] for m in c["members"]]
    assert sorted(members) == sorted(str(p.relative_to(photos)) for p in before)
    for c in run["clusters"]:
        files = sorted((out / c["folder"]).iterdir())
        assert len(files) == c["size"]
        assert (out / c["sheet"]).read_bytes()[:4] == b"\x89PNG"
        for m in c["members"]:
            assert (out / c["folder"] / m.replace(os.sep, "__")).read_bytes() == (photos / m).read_bytes()
    assert json.loads((out / "clusters.json").read_text())["clusters"] == run["clusters"]
    assert run["scores"]["identities"] == 4
    assert snapshot(photos) == before


def test_out_refused_forced_and_atomic(tmp_path, photos, reg, monkeypatch):
    out = tmp_path / "c"
    args = ("--version", "v1", "--data", photos, "--threshold", 1.0, "--registry", reg.root)
    assert invoke(*args, "--out", out).exit_code == 0
    first = snapshot(out)
    r = invoke(*args, "--out", out, "--min-size", 1)
    assert r.exit_code == 2 and "--force" in r.output and snapshot(out) == first
    assert invoke(*args, "--out", out, "--min-size", 1, "--force", "--hardlink").exit_code == 0
    linked = next(p for p in out.glob("cluster_*/*"))
    assert any(linked.stat().st_ino == p.stat().st_ino for p in photos.rglob("*.png"))
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    r = invoke(*args, "--out", other, "--force")
    assert r.exit_code == 2 and "not an output" in r.output and (other / "notes.txt").read_text() == "keep me"
    r = invoke(*args, "--out", photos / "inside")
    assert r.exit_code == 2 and "overlap" in r.output and not (photos / "inside").exists()

    import harmony.evaluation.cluster as cl

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(cl, "contact_sheet", boom)
    r = invoke(*args, "--out", tmp_path / "fresh")
    assert r.exit_code == 2 and "disk full" in r.output
    assert not (tmp_path / "fresh").exists() and not list(tmp_path.glob(".fresh.tmp-*"))
    r = invoke(*args, "--out", out, "--force")
    assert r.exit_code == 2 and snapshot(out) != {} and (out / "clusters.json").is_file()  # the old output stays


def test_a_killed_runs_temp_folder_is_swept_by_the_next_run(tmp_path, photos, reg):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".c.tmp-{int(dead.stdout)}-abc"  # what a kill -9 mid-write leaves beside --out
    (stale / "cluster_001").mkdir(parents=True)
    live = tmp_path / f".c.tmp-{os.getpid()}-xyz"  # a run still in progress: never touched
    live.mkdir()
    r = invoke("--version", "v1", "--data", photos, "--threshold", 1.0, "--registry", reg.root, "--out", tmp_path / "c")
    assert r.exit_code == 0, r.output
    assert not stale.exists() and live.is_dir() and (tmp_path / "c" / "clusters.json").is_file()
