"""Hostile-user reproductions (issue 17): each test first tries the attack, then checks that it
ends in a one-line error with exit 2 (or correct behaviour), nothing lost, no debris left."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (the DuckDB WAL excepted: DuckDB owns it)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".wal")}


@pytest.fixture()
def digest():
    return tree_digest


from tests.registry.conftest import add, make_ckpt, reg  # noqa: E402,F401  (the registry fixtures)
from tests.gallery.helpers import env, shared_versions  # noqa: E402,F401  (the gallery fixtures)
