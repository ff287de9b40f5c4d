"""Every group and every command of `harmony` shows an `Example:` in its --help."""

from __future__ import annotations

from typer.main import get_command
from typer.testing import CliRunner

from harmony.cli.main import app


def _paths(cmd, path=()):
    yield list(path)
    for name, sub in sorted((getattr(cmd, "commands", None) or {}).items()):
        yield from _paths(sub, (*path, name))


def test_every_help_page_has_an_example():
    runner = CliRunner()
    paths = list(_paths(get_command(app)))
    groups = {p[0] for p in paths if p}
    assert groups >= {"train", "data", "registry", "eval", "gallery", "migrate", "demo", "serve"}
    missing = []
    for p in paths:
        r = runner.invoke(app, [*p, "--help"], terminal_width=200)
        assert r.exit_code == 0, (p, r.output)
        if "Example:" not in r.output:
            missing.append(" ".join(p) or "harmony")
    assert missing == []
