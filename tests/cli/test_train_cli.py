"""End to end from the CLI: train base models and a harmonic v2 on micro recipes, in seconds."""

from __future__ import annotations

from typer.testing import CliRunner

from harmony.cli.main import app
from tests.conftest import write_recipe

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_help_lists_groups_and_examples():
    r = invoke("--help")
    assert r.exit_code == 0 and "train" in r.output and "data" in r.output
    for sub in (["train", "base"], ["train", "harmonic"], ["data", "synth"]):
        r = invoke(*sub, "--help")
        assert r.exit_code == 0 and "Example:" in r.output


def test_train_base_registers_and_refuses_duplicate(micro_recipe, registry_root):
    r = invoke("train", "base", "--recipe", micro_recipe, "--name", "v1", "--quiet", "--registry", registry_root)
    assert r.exit_code == 0, r.output
    assert "VAL@FAR" in r.output and "raw pixels" in r.output
    from harmony.registry import Registry

    reg = Registry.open(registry_root)
    v = reg.get_version("v1")
    assert v.kind == "base" and v.dim == 16 and v.backbone == "small_cnn" and len(v.sha256) == 64
    assert "val@0.01" in v.metrics and "micro" in v.recipe
    assert reg.artifact_path("v1").is_file()
    r = invoke("train", "base", "--recipe", micro_recipe, "--name", "v1", "--quiet", "--registry", registry_root)
    assert r.exit_code == 2 and "already exists" in r.output


def test_bad_recipe_is_one_line_error(tmp_path, registry_root):
    bad = write_recipe(tmp_path / "bad.yaml", train={"mining": "random"})
    r = invoke("train", "base", "--recipe", bad, "--name", "x", "--registry", registry_root)
    assert r.exit_code == 2
    assert "train.mining" in r.output and "semihard" in r.output
    assert not (registry_root / "artifacts" / "x").exists()


def test_data_synth_writes_folder_and_preview(tmp_path):
    out, png = tmp_path / "faces", tmp_path / "sheet.png"
    r = invoke("data", "synth", "-n", "3", "-k", "2", "--out", out, "--preview", png)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["id00000", "id00001", "id00002"]
    assert len(list((out / "id00001").glob("*.png"))) == 2
    assert png.stat().st_size > 1000
    r = invoke("data", "scan", out)
    assert r.exit_code == 0 and "identities used" in r.output
