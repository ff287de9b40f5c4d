"""Layout rules of the redesign (issue 16) that a future change could quietly break."""

from __future__ import annotations

import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "harmony"


def test_only_the_cli_renders():
    offenders = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
                 if "cli" not in p.relative_to(PKG).parts[:1]
                 and re.search(r"^\s*(import rich|from rich)", p.read_text(), flags=re.M)]
    assert offenders == []


def test_the_registry_runs_no_model():
    offenders = [str(p.relative_to(PKG)) for p in (PKG / "registry").rglob("*.py")
                 if re.search(r"^\s*(import (torch|dlib|onnxruntime)|from (torch|dlib|onnxruntime))", p.read_text(),
                              flags=re.M)]
    assert offenders == []


def test_migration_states_have_one_home():
    homes = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if re.search(r"^TRANSITIONS\b", p.read_text(), flags=re.M)]
    assert homes == ["migration/states.py"]
    assert not (PKG / "operations").exists()
