"""Transform-only upgrades (FCT without side-information): quality of h, and conversion speed.

Quality, per seed: v1 (recipes/base-tiny.yaml) and an independent v2-base
(recipes/base-tiny-large.yaml) trained with ``harmony.training.base.fit_base`` (checkpoints kept
under ``--models``, default /tmp/harmony-bench-models, and reused: training is the slow part), both
registered in a scratch registry, then ``harmony train transform``'s path
(``train_transform`` with recipes/transform-tiny.yaml) learns h and records its table on the
held-out TEST identities: VAL(v1,v1), VAL(v2,v2), VAL(v2->h(v1)), VAL(h(v1),h(v1)),
gain_recovered, and VAL(v2->v1) without h. Variants of the recipe (linear map only, L2 + triplet)
are fitted on the same cached embeddings and scored on VAL and TEST identities; the recipe was
chosen on the VAL figures. Mean over the seeds run (each seed saved to
results/transform-seed<N>-<key>.json, the key naming the recipes and the training precision
(bench/seed_pool.py); the summary pools every saved seed of that key).

Speed, on one gallery (synthetic 64 px PNG faces of test-split identities, flat codec, seed 0's
models): ``migrate gallery --via`` (read the stored v1 vectors, h, install the v2 index; no image
read) against a full re-embed of the same gallery with v2 (the normal checkpointed backfill),
vectors/s and the ratio; plus the conversion alone over a large gallery of random unit vectors.

Run: python bench/bench_transform.py [--full] [--seeds 0 1 2] [--models DIR] [--pool-only];
writes bench/results/transform.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harmony.io import atomic_write_text  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "transform.json"
RESULTS_DIR = RESULTS.parent
FARS = (1e-2, 1e-3)
RECIPES = ("base-tiny.yaml", "base-tiny-large.yaml", "transform-tiny.yaml")
VARIANTS = {
    "recipe (residual MLP, L2)": {},
    "linear map only (blocks 0)": {"transform.blocks": 0},
    "residual MLP, L2 + triplet": {"transform.triplet_weight": 1.0},
}
DEFAULT_MODELS = Path(tempfile.gettempdir()) / "harmony-bench-models"


def base_models(seed: int, models: Path) -> dict[str, Path]:
    """v1 and v2-base checkpoints of ``seed``: trained with fit_base once, then reused."""
    import torch

    from harmony.recipe import load_recipe
    from harmony.training.base import fit_base

    models.mkdir(parents=True, exist_ok=True)
    out = {}
    for tag, recipe in (("v1", "base-tiny.yaml"), ("v2b", "base-tiny-large.yaml")):
        path = models / f"{tag}-seed{seed}.pt"
        if not path.is_file():
            t0 = time.time()
            model, _ = fit_base(load_recipe(ROOT / "recipes" / recipe).override(seed=seed))
            torch.save(model.checkpoint(), path)
            print(f"trained {tag} seed {seed} in {time.time() - t0:.0f} s -> {path}", flush=True)
        out[tag] = path
    return out


def scratch_registry(tmp: Path, ckpts: dict[str, Path]):
    from harmony.models.embedder import embedder_from_checkpoint
    from harmony.models.loading import load_torch_checkpoint
    from harmony.registry import Registry

    reg = Registry.open(tmp / "registry")
    for name, tag in (("v1", "v1"), ("v2", "v2b")):
        m = embedder_from_checkpoint(load_torch_checkpoint(ckpts[tag]))
        reg.add_version(name, kind="base", artifact=ckpts[tag], backbone=m.spec.backbone, dim=m.dim,
                        meta={"spec": m.spec.as_dict()})
    return reg


def _rows_by_far(table: dict) -> dict:
    return {f"{r['far']:g}": {k: r[k] for k in ("val_from_from", "val_to_to", "val_to_mapped", "val_mapped_mapped",
                                                 "gain_recovered", "val_to_from_without_h")}
            for r in table["rows"]}


def one_seed(seed: int, models: Path) -> dict:
    """Register seed's v1/v2, train h through train_transform, fit the variants on the same vectors."""
    from harmony.models.transform import apply_transform
    from harmony.recipe import load_transform_recipe
    from harmony.training.transform import (crop_encoder, fit_transform, paired_split, train_transform,
                                            transform_table)

    ckpts = base_models(seed, models)
    tmp = Path(tempfile.mkdtemp(prefix="bench-transform-"))
    try:
        reg = scratch_registry(tmp, ckpts)
        recipe = load_transform_recipe(ROOT / "recipes" / "transform-tiny.yaml").override(seed=seed)
        res = train_transform(reg, recipe, "v1-to-v2", "v1", "v2")
        out = {"seed": seed, "registered": {"test": _rows_by_far(res.table), "val": _rows_by_far(res.val_table),
                                            "fit_s": res.fit_s, "wall_s": res.wall_s}, "variants": {}}
        old, new = crop_encoder(reg, "v1"), crop_encoder(reg, "v2")
        sets = {split: paired_split(old, new, recipe.data, split) for split in ("train", "val", "test")}
        for name, over in VARIANTS.items():
            r = recipe.override(**over)
            fit = fit_transform(r, sets["train"], sets["val"] if r.transform.eval_every else None)
            out["variants"][name] = {
                split: _rows_by_far(transform_table(sets[split], apply_transform(fit.model, sets[split].old), FARS))
                for split in ("val", "test")} | {"fit_s": fit.seconds}
            t = out["variants"][name]["test"]
            print(f"seed {seed} {name}: " + ", ".join(
                f"FAR {f}: v1v1 {t[f]['val_from_from']:.3f} v2v2 {t[f]['val_to_to']:.3f} v2->h(v1) "
                f"{t[f]['val_to_mapped']:.3f} gain {t[f]['gain_recovered'] or float('nan'):.2f}" for f in t), flush=True)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def summarise(runs: list[dict]) -> list[dict]:
    """Mean over seeds per FAR: the registered recipe, then each variant (test and val identities)."""
    rows = []
    for far in (f"{f:g}" for f in FARS):
        for what, pick in [("registered (train transform)", lambda r: r["registered"])] + [
                (v, lambda r, v=v: r["variants"][v]) for v in VARIANTS]:
            sub = [pick(r) for r in runs if what.startswith("registered") or what in r["variants"]]
            if not sub:
                continue
            t = [s["test"][far] for s in sub]
            gains = [x["gain_recovered"] for x in t if x["gain_recovered"] is not None]
            rows.append({
                "far": far, "h": what, "VAL(v1,v1)": float(np.mean([x["val_from_from"] for x in t])),
                "VAL(v2,v2)": float(np.mean([x["val_to_to"] for x in t])),
                "VAL(v2->h(v1))": float(np.mean([x["val_to_mapped"] for x in t])),
                "VAL(h(v1),h(v1))": float(np.mean([x["val_mapped_mapped"] for x in t])),
                "VAL(v2->v1) no h": float(np.mean([x["val_to_from_without_h"] for x in t])),
                "gain_recovered": float(np.mean(gains)) if gains else None,
                "gain_recovered std": float(np.std(gains)) if gains else None,
                "val-ids gain": float(np.mean([s["val"][far]["gain_recovered"] for s in sub
                                                if s["val"][far]["gain_recovered"] is not None] or [np.nan])),
                "seeds": " ".join(str(r["seed"]) for r in runs)})
    return rows


# -- speed --------------------------------------------------------------------------------------

def speed(models: Path, n_identities: int, per_identity: int, n_random: int) -> dict:
    """``--via`` conversion against a full re-embed of the same gallery, then the conversion alone at scale."""
    from harmony.data.synthetic_folder import write_synthetic_faces
    from harmony.gallery.catalog import build_gallery
    from harmony.gallery.store import GalleryStore
    from harmony.migration.convert import convert_gallery, plan_conversion, run_conversion
    from harmony.migration.plan import plan_migration
    from harmony.migration.run import run_migration
    from harmony.models.transform import load_transform
    from harmony.recipe import load_transform_recipe
    from harmony.registry import Registry
    from harmony.training.transform import train_transform

    ckpts = base_models(0, models)
    tmp = Path(tempfile.mkdtemp(prefix="bench-transform-speed-"))
    try:
        reg = scratch_registry(tmp, ckpts)
        recipe = load_transform_recipe(ROOT / "recipes" / "transform-tiny.yaml")
        train_transform(reg, recipe, "v1-to-v2", "v1", "v2")
        faces = write_synthetic_faces(tmp / "faces", n_identities, per_identity, size=64)
        build_gallery(reg, "G", "v1", faces, batch_size=256)
        other = Registry.open(shutil.copytree(reg.root, tmp / "registry-reembed"))
        t0 = time.perf_counter()
        conv = run_conversion(reg, plan_conversion(reg, "G", "v2", "v1-to-v2"))
        via_total = time.perf_counter() - t0
        t0 = time.perf_counter()
        full = run_migration(other, plan_migration(other, "G", "v2"), batch_size=256)
        reembed_total = time.perf_counter() - t0
        c, b = conv.conversion, full.backfill
        n = c.n_converted
        gallery = {"n_items": n, "codec": "flat", "image_size": 64,
                   "via": {"seconds": c.total_s, "vectors_per_s": c.vectors_per_s, "read_s": c.read_s,
                           "transform_s": c.transform_s, "index_s": c.index_s, "write_s": c.write_s,
                           "with_plan_report_s": via_total},
                   "reembed": {"seconds": b.total_s, "items_per_s": b.items_per_s, "embed_s": b.embed_s,
                               "with_plan_report_s": reembed_total},
                   "speedup": (n / c.total_s) / b.items_per_s if b.items_per_s else None}
        # the conversion alone over a large gallery of random unit vectors (no image anywhere)
        rng = np.random.default_rng(0)
        _, h = load_transform(reg, "v1-to-v2")
        store = GalleryStore.create(tmp / "big", h.in_dim, "v1", use_gpu=False)
        x = rng.normal(size=(n_random, h.in_dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        ids = [f"item{i}" for i in range(n_random)]
        store.add_items(ids, ids, ["x"] * n_random, x, "v1")
        r = convert_gallery(store, "v1", "v2", h, "v1-to-v2")
        big = {"n_items": n_random, "seconds": r.total_s, "vectors_per_s": r.vectors_per_s, "read_s": r.read_s,
               "transform_s": r.transform_s, "index_s": r.index_s, "write_s": r.write_s}
        return {"gallery": gallery, "random": big}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(quick: bool = True, seeds: list[int] | None = None, models: Path = DEFAULT_MODELS,
        pool_only: bool = False, skip_speed: bool = False) -> dict:
    import torch

    from bench.run import machine

    from bench.seed_pool import pool_key, pooled_runs, seed_path, training_precision

    paths = [ROOT / "recipes" / name for name in RECIPES]
    precision = training_precision(paths)
    key = pool_key(paths, precision)
    seeds = [] if pool_only else (seeds if seeds is not None else ([0] if quick else [0, 1, 2]))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        r = one_seed(s, models) | {"recipes": key, "precision": precision}
        atomic_write_text(seed_path(RESULTS_DIR, "transform", s, key), json.dumps(r, indent=2, default=float))
    runs = pooled_runs(RESULTS_DIR, "transform", key)
    if not runs:
        raise SystemExit(f"no seed measured with the current recipes ({key}); run without --pool-only")
    rows = summarise(runs)
    old = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    sp = old.get("speed") if skip_speed or pool_only else None
    if sp is None and not (skip_speed or pool_only):
        sp = speed(models, *((300, 8, 200_000) if quick else (1250, 8, 1_000_000)))
    reg_rows = [r for r in rows if r["h"].startswith("registered")]
    summary = "; ".join(f"FAR {r['far']}: VAL(v1,v1) {r['VAL(v1,v1)']:.3f}, VAL(v2,v2) {r['VAL(v2,v2)']:.3f}, "
                        f"VAL(v2->h(v1)) {r['VAL(v2->h(v1))']:.3f}, VAL(h(v1),h(v1)) {r['VAL(h(v1),h(v1))']:.3f}, "
                        f"gain_recovered {r['gain_recovered']:.2f} (without h VAL(v2->v1) {r['VAL(v2->v1) no h']:.3f})"
                        for r in reg_rows) + f" (mean over seeds {reg_rows[0]['seeds']}, test identities)."
    if sp:
        g = sp["gallery"]
        summary += (f" Speed on one {g['n_items']:,}-item gallery: --via {g['via']['vectors_per_s']:,.0f} vectors/s "
                    f"vs full re-embed {g['reembed']['items_per_s']:,.0f} items/s ({g['speedup']:,.0f}x); "
                    f"conversion alone over {sp['random']['n_items']:,} vectors: "
                    f"{sp['random']['vectors_per_s']:,.0f} vectors/s.")
    out = {"benchmark": "transform", "summary": summary, "rows": rows, "runs": runs, "speed": sp, "recipes": key,
           "machine": machine() | {"torch_threads": torch.get_num_threads(),
                                   "load_avg_1m": os.getloadavg()[0]}}
    atomic_write_text(RESULTS, json.dumps(out, indent=2, default=float))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="3 seeds, a 10,000-item gallery, 1M random vectors")
    ap.add_argument("--seeds", type=int, nargs="*")
    ap.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="where v1/v2-base checkpoints are kept")
    ap.add_argument("--pool-only", action="store_true", help="train nothing; summarise the saved seeds")
    ap.add_argument("--skip-speed", action="store_true", help="keep the speed figures of the last run")
    args = ap.parse_args()
    res = run(quick=not args.full, seeds=args.seeds, models=args.models, pool_only=args.pool_only,
              skip_speed=args.skip_speed)
    print(res["summary"])
