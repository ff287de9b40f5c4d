"""`harmony data align` through typer's CliRunner: crops, the report on screen and on disk, the
exit status (0 with photos skipped, 2 when nothing could be aligned), the resume."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("dlib", reason="dlib is optional: pip install 'harmony[dlib]'")

from PIL import Image  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from harmony.cli.data import app  # noqa: E402
from tests.align.conftest import NO_FACE, PORTRAIT  # noqa: E402

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, ["align", *map(str, args)], catch_exceptions=False)


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich folds long tmp paths at 80 columns


@pytest.fixture()
def raw(tmp_path):
    root = tmp_path / "raw"
    for person, photo in (("eileen", PORTRAIT), ("chelsea", NO_FACE)):
        (root / person).mkdir(parents=True)
        (root / person / photo.name).write_bytes(photo.read_bytes())
    (root / "chelsea" / "broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    return root


def test_align_writes_crops_lists_the_skipped_photos_and_resumes(raw, tmp_path):
    out = tmp_path / "crops"
    r = invoke(raw, "--out", out, "--size", 112, "--style", "dlib-chip", "--workers", 1)
    assert r.exit_code == 0, r.output
    assert Image.open(out / "eileen" / "astronaut.png").size == (112, 112)
    assert "no face found" in r.output and "chelsea-no-face.jpg" in r.output and "broken.jpg" in r.output
    assert "aligned now" in r.output and str(out / "align-report.json") in r.output.replace("\n", "")
    report = json.loads((out / "align-report.json").read_text())
    assert report["spec"]["size"] == 112 and report["spec"]["style"] == "dlib-chip"
    assert {p["path"]: p["reason"] for p in report["problems"]}["chelsea/chelsea-no-face.jpg"] == "no face found"
    again = runner.invoke(app, ["align", str(raw), "--out", str(out), "--size", "112", "--style", "dlib-chip",
                                "--json"], catch_exceptions=False)
    assert again.exit_code == 0
    counts = json.loads(again.stdout)["counts"]
    assert counts["aligned_now"] == 0 and counts["resumed"] == 1 and counts["unreadable"] == 1


def test_defaults_are_facenet_160_with_margin_32(raw, tmp_path):
    r = invoke(raw, "--out", tmp_path / "crops", "--json")
    assert r.exit_code == 0, r.output
    spec = json.loads(r.stdout)["spec"]
    assert (spec["style"], spec["size"], spec["margin"]) == ("facenet", 160, 32)
    assert Image.open(tmp_path / "crops" / "eileen" / "astronaut.png").size == (160, 160)


def test_nothing_aligned_is_exit_2_with_one_error_line(raw, tmp_path):
    r = invoke(raw / "chelsea", "--out", tmp_path / "crops")
    assert r.exit_code == 2
    assert "no face found" in r.output  # the table is still shown
    assert "error: no face aligned in any of 2 photo(s)" in r.output
    assert (tmp_path / "crops" / "align-report.json").is_file()


def test_bad_options_are_one_line_errors(raw, tmp_path):
    r = invoke(raw, "--out", tmp_path / "crops", "--style", "mtcnn")
    assert r.exit_code == 2 and "unknown alignment style 'mtcnn'" in r.output
    r = invoke(tmp_path / "nowhere", "--out", tmp_path / "crops")
    assert r.exit_code == 2 and "does not exist" in r.output
