"""harmony: versioned face embeddings with backward-compatible (harmonic) upgrades.

The public API: every operation takes the :class:`Registry` first, so a Python session reads
like the CLI::

    import harmony
    reg = harmony.Registry.open("registry")
    harmony.train_base(reg, harmony.load_recipe("recipes/base-tiny.yaml"), "v1")
    plan = harmony.plan_migration(reg, "prod", "v2")

Names are imported on first use (``harmony --help`` stays fast; torch and faiss load only when a
function that needs them is called).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API: dict[str, str] = {
    # the registry
    "Registry": "harmony.registry.store",
    # recipes and data
    "load_recipe": "harmony.recipe",
    "load_transform_recipe": "harmony.recipe",
    "synthetic_set": "harmony.evaluation.datasets",
    "folder_set": "harmony.evaluation.datasets",
    "write_synthetic_faces": "harmony.data.synthetic_folder",
    # training
    "train_base": "harmony.training.base",
    "train_harmonic": "harmony.training.harmonic",
    "train_transform": "harmony.training.transform",
    # evaluation
    "evaluate": "harmony.evaluation.run",
    "embed": "harmony.evaluation.cache:embed_cached",
    "export_model": "harmony.models.export",
    # galleries
    "build_gallery": "harmony.gallery.catalog",
    "add_to_gallery": "harmony.gallery.catalog",
    "remove_from_gallery": "harmony.gallery.catalog",
    "search": "harmony.migration.search:search_gallery",
    # migrations
    "plan_migration": "harmony.migration.plan",
    "migrate": "harmony.migration.run:run_migration",
    "plan_conversion": "harmony.migration.convert",
    "convert": "harmony.migration.convert:run_conversion",
    "migration_status": "harmony.migration.lifecycle",
    "swap": "harmony.migration.lifecycle:swap_gallery",
    "rollback": "harmony.migration.lifecycle:rollback_gallery",
    "gc": "harmony.migration.lifecycle:gc_gallery",
    "backfill_curves": "harmony.migration.curve:gallery_curves",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'harmony' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr or name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


if TYPE_CHECKING:  # what type checkers and IDEs see
    from harmony.data.synthetic_folder import write_synthetic_faces
    from harmony.evaluation.cache import embed_cached as embed
    from harmony.evaluation.datasets import folder_set, synthetic_set
    from harmony.evaluation.run import evaluate
    from harmony.gallery.catalog import add_to_gallery, build_gallery, remove_from_gallery
    from harmony.migration.lifecycle import gc_gallery as gc
    from harmony.models.export import export_model
    from harmony.migration.lifecycle import migration_status
    from harmony.migration.lifecycle import rollback_gallery as rollback
    from harmony.migration.lifecycle import swap_gallery as swap
    from harmony.migration.plan import plan_migration
    from harmony.migration.run import run_migration as migrate
    from harmony.migration.search import search_gallery as search
    from harmony.migration.convert import plan_conversion
    from harmony.migration.convert import run_conversion as convert
    from harmony.recipe import load_recipe, load_transform_recipe
    from harmony.registry.store import Registry
    from harmony.training.base import train_base
    from harmony.training.harmonic import train_harmonic
    from harmony.training.transform import train_transform
