"""The README's Python session runs as written (on micro recipes instead of the tiny ones)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import harmony
from harmony.recipe import recipe_from_dict
from tests.conftest import MICRO

README = Path(__file__).resolve().parents[1] / "README.md"


def python_snippet() -> str:
    text = README.read_text()
    section = text[text.index("## From Python"):]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_public_api_is_lazy_and_complete():
    import subprocess
    import sys

    code = "import harmony, sys; print('torch' in sys.modules, 'faiss' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    for name in harmony.__all__:
        assert callable(getattr(harmony, name)), name
    with pytest.raises(AttributeError):
        harmony.no_such_thing


def test_readme_python_session_runs(tmp_path, monkeypatch):
    code = python_snippet()
    assert len(code.strip().splitlines()) <= 16
    monkeypatch.chdir(tmp_path)
    seen = []

    def micro_recipe(path):
        seen.append(Path(path).name)
        return recipe_from_dict({**MICRO, "name": Path(path).stem})

    monkeypatch.setattr(harmony, "load_recipe", micro_recipe)
    code = code.replace("identities=200", "identities=12")  # the gallery, kept small for the suite
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert seen == ["base-tiny.yaml", "base-tiny-large.yaml", "harmonic-tiny.yaml"]
    reg = harmony.Registry.open(tmp_path / "registry")
    assert {v.name for v in reg.list_versions()} == {"v1", "v2-base", "v2"}
    g = reg.get_gallery("prod")
    assert g.version == "v1"  # rolled back after the swap
    assert [m.state for m in reg.migrations("prod")] == ["rolled_back"]
