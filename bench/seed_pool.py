"""Per-seed result files of the training benchmarks, pooled only when they measured the same thing.

Seeds run on different days compose into one mean, but only when they trained the same recipes
(the parsed content, so an edited comment keeps the pool) at the same precision: ``precision:
auto`` trains in bf16 on a CPU with native bf16 and in fp32 elsewhere, and the two differ by more
than the seed spread (the demo's gain recovered at seed 0: 0.47 in bf16, 0.44 in fp32). Each pool
has its own files (``<prefix>-seed<N>-<key>.json``), so a run on another machine never overwrites
another pool's seeds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path


def training_precision(recipe_paths: Sequence[Path]) -> str:
    """The precision the training recipes among these train at on this machine (one value; mixed
    ones are joined). A recipe without a ``train`` section (a transform recipe) trains no network."""
    import yaml

    from harmony.recipe import TrainSpec
    from harmony.training.precision import resolve_precision

    found = []
    for p in recipe_paths:
        train = (yaml.safe_load(Path(p).read_text()) or {}).get("train")
        if isinstance(train, dict):
            found.append(resolve_precision(train.get("precision", TrainSpec.precision),
                                           train.get("accelerator", TrainSpec.accelerator)))
    return "+".join(dict.fromkeys(found))


def pool_key(recipe_paths: Sequence[Path], precision: str) -> str:
    import yaml

    content = {Path(p).name: yaml.safe_load(Path(p).read_text()) for p in recipe_paths}
    return hashlib.sha256(json.dumps({"recipes": content, "precision": precision},
                                     sort_keys=True).encode()).hexdigest()[:16]


def seed_path(results_dir: Path, prefix: str, seed: int, key: str) -> Path:
    return results_dir / f"{prefix}-seed{seed}-{key}.json"


def pooled_runs(results_dir: Path, prefix: str, key: str) -> list[dict]:
    """Every per-seed file of this pool, by seed."""
    runs = [json.loads(f.read_text()) for f in sorted(results_dir.glob(f"{prefix}-seed*-{key}.json"))]
    return sorted((r for r in runs if r.get("recipes") == key), key=lambda r: r["seed"])
