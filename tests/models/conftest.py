"""Model tests use the registry tests' fixtures: a fresh registry and small registered versions."""

from tests.registry.conftest import add, make_ckpt, reg  # noqa: F401  (pytest fixtures)
