"""`harmony registry ...` commands through typer's CliRunner on the sub-app."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from typer.testing import CliRunner

from harmony.cli.registry import app

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

runner = CliRunner()
TABLE = {"old_old": 0.90, "new_new": 0.95, "new_old": 0.91, "old_new": 0.91}


def run(reg, *args: str, code: int = 0):
    result = runner.invoke(app, [*args, "--registry", str(reg.root)])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture()
def filled(reg, add):
    add("v1", metrics={"val": 0.8})
    add("v2", parent="v1", kind="harmonic")
    reg.set_alias("prod", "v2")
    reg.record_evaluation("v2", "synthetic-test", {"val@1e-3": 0.84})
    reg.record_compatibility("v2", "v1", "synthetic-test", 1e-3, TABLE, True)
    return reg


def test_every_command_has_an_example():
    from harmony.cli.registry import alias_app

    for typer_app in (app, alias_app):
        for command in typer_app.registered_commands:
            assert "Example: harmony registry" in (command.callback.__doc__ or ""), command.callback.__name__


def test_list_show_lineage(filled):
    assert "v2" in run(filled, "list").output and "prod" in run(filled, "list").output
    assert [v["name"] for v in json.loads(run(filled, "list", "--json").stdout)] == ["v1", "v2"]
    shown = json.loads(run(filled, "show", "prod", "--json").stdout)
    assert shown["name"] == "v2" and shown["aliases"] == ["prod"]
    assert shown["evaluations"][0]["metrics"] == {"val@1e-3": 0.84}
    assert "synthetic-test" in run(filled, "show", "v2").output
    assert [v["name"] for v in json.loads(run(filled, "lineage", "v2", "--json").stdout)] == ["v2", "v1"]
    assert "lineage of v2" in run(filled, "lineage", "v2").output


def test_errors_are_one_line_with_exit_2(filled):
    result = run(filled, "show", "v9", code=2)
    assert "no version or alias named 'v9'" in result.output and "harmony registry list" in result.output


def test_compat(filled):
    rows = json.loads(run(filled, "compat", "v2", "v1", "--json").stdout)
    assert rows[0]["table"]["new_old"] == 0.91 and rows[0]["compatible"] is True
    assert "compatible" in run(filled, "compat", "prod", "v1").output
    assert "no compatibility measured" in run(filled, "compat", "v1", "v2").output


def test_alias_commands(filled):
    assert "stable -> v1" in run(filled, "alias", "set", "stable", "v1").output
    assert json.loads(run(filled, "alias", "list", "--json").stdout) == {"prod": "v2", "stable": "v1"}
    run(filled, "alias", "rm", "stable")
    assert "stable" not in run(filled, "alias", "list").output
    run(filled, "alias", "rm", "stable", code=2)


def test_verify_and_rm(filled, add):
    assert {r["status"] for r in json.loads(run(filled, "verify", "--json").stdout)} == {"ok"}
    add("v3")
    run(filled, "rm", "v1", code=2)  # parent of v2
    assert "removed version v3" in run(filled, "rm", "v3").output
    v1 = filled.get_version("v1")
    (filled.root / v1.artifact).write_bytes(b"tampered")
    result = run(filled, "verify", code=1)
    assert "altered" in result.output
    assert json.loads(run(filled, "verify", "v2", "--json").stdout)[0]["status"] == "ok"


def test_export(filled, tmp_path):
    out = tmp_path / "backup"
    run(filled, "export", "--format", "json", "--out", str(out))
    assert json.loads((out / "versions.json").read_text())[1]["name"] == "v2"
    run(filled, "export", "--out", str(out))
    assert (out / "compatibility.parquet").is_file()


def test_sql(filled):
    rows = json.loads(run(filled, "sql", "SELECT name, dim FROM versions ORDER BY name", "--json").stdout)
    assert rows == [{"name": "v1", "dim": 128}, {"name": "v2", "dim": 128}]
    assert "v1" in run(filled, "sql", "SELECT name FROM versions").output
    assert "query failed" in run(filled, "sql", "DROP TABLE versions", code=2).output


class Scaled(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) * 2.0


def test_add_external_torchscript(reg, tmp_path):
    path = tmp_path / "m.ts"
    torch.jit.script(Scaled()).save(str(path))
    result = run(reg, "add-external", "legacy", "--adapter", "torchscript", "--file", str(path),
                 "--image-size", "8", "--mean", "0,0,0", "--std", "1,1,1")
    assert "registered external version legacy" in result.output
    v = reg.get_version("legacy")
    assert (v.dim, v.meta["mean"], v.meta["image_size"]) == (3, [0.0, 0.0, 0.0], 8)
    run(reg, "add-external", "x", "--adapter", "torchscript", "--image-size", "8", code=2)
    assert "comma-separated" in run(reg, "add-external", "y", "--adapter", "torchscript", "--file", str(path),
                                    "--image-size", "8", "--mean", "a,b", code=2).output


def test_add_external_dlib(reg):
    if importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("dlib not installed (pip install 'harmony[dlib]')")
    run(reg, "add-external", "dlib-v1", "--adapter", "dlib", "--mode", "detect")
    from harmony.models.pipeline import DLIB_DETECT_ALIGN  # detect mode records its aligner (issue 18)

    assert reg.get_version("dlib-v1").meta == {"adapter": "dlib", "mode": "detect", "image_size": 150,
                                               "align": DLIB_DETECT_ALIGN.as_dict()}
    assert json.loads(run(reg, "verify", "--json").stdout)[0]["status"] == "ok"
