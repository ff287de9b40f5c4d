"""`harmony demo` from the CLI on micro recipes: its folder keeps the registry, plot, summary and log."""

from __future__ import annotations

from typer.testing import CliRunner

from harmony.cli.main import app

runner = CliRunner()


def test_demo_cli_keeps_everything_and_refuses_a_used_folder(tmp_path, micro_demo_recipes, monkeypatch):
    monkeypatch.setenv("HARMONY_REGISTRY", str(tmp_path / "user-registry"))
    out = tmp_path / "demo-run"
    args = ["demo", "--out", str(out), "--recipes", str(micro_demo_recipes), "--quiet"]
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "compatible" in r.output and "total" in r.output
    assert (out / "registry" / "harmony.duckdb").is_file() and (out / "val_far.png").stat().st_size > 1000
    log = (out / "demo.log").read_text()
    assert "VAL(v1,v1)" in log and "demo timings" in log and "\x1b[" not in log  # plain text, tables included
    assert (out / "summary.json").is_file()
    assert not (tmp_path / "user-registry").exists()  # the user's registry is never touched
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 2 and "already holds a demo registry" in r.output
