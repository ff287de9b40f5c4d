"""Backfill order, measured: mixed-search top-1 and VAL@1e-3 against the share backfilled, per order.

Two real trained models on the synthetic benchmark's held-out TEST identities (300 x 8 renders at
64 px; no training identity appears): the gallery is every image embedded by the old version,
probes are the same images embedded by the new one, and after each 10% of the backfill the
backfilled items hold their new vector (harmony.migration.curve: the product's mixed-search
semantics, leave-one-out; VAL over the pairs (i, j), i != j). For each seed the gallery is a
seeded draw of 160 of the 300 identities (of the 200 with ``--split val``) and the random order
uses that seed; the table reports the area under each curve (mean +- std over the seeds) and
uncertainty - random per seed.

Models (harmony checkpoints, ``Embedder.checkpoint()``), in ``--models DIR`` (default
/tmp/wt-c-models): ``v1.pt`` (recipes/base-tiny.yaml) and ``v2-base.pt``
(recipes/base-tiny-large.yaml), trained here with ``fit_base`` when missing, and ``v2.pt`` (a
harmonic v2 from recipes/harmonic-tiny.yaml, trained with ``--train-harmonic``, or brought).
Measured on 2 cores shared with three other jobs: v1 43 min, v2-base 55 min, v2 25 min.
Or any registered versions: ``--registry ROOT --pair v1:v2 --pair v1:v2-base``.

Run: ``python bench/bench_backfill_order.py [--seeds 0 1 2] [--png-dir bench/results]``;
``python -m bench backfill_order`` runs the default. Writes bench/results/backfill_order.json
and one PNG per pair (seed 0).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from harmony.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "backfill_order.json"
MODELS = Path("/tmp/wt-c-models")
RECIPES = {"v1": "base-tiny.yaml", "v2-base": "base-tiny-large.yaml"}
ORDERS = ("sequential", "random", "uncertainty")
FAR = 1e-3
GALLERY_IDENTITIES = 160  # drawn per seed from the 300 test (200 val) identities


def train_missing(models: Path, harmonic: bool = False) -> dict[str, float]:
    """Train v1 / v2-base (and the harmonic v2) into ``models`` if their checkpoints are missing."""
    import torch

    from harmony.models.embedder import embedder_from_checkpoint
    from harmony.models.encode import TorchEncoder
    from harmony.models.loading import load_torch_checkpoint
    from harmony.recipe import load_recipe
    from harmony.training.base import fit_base
    from harmony.training.harmonic import fit_harmonic

    models.mkdir(parents=True, exist_ok=True)
    took = {}
    for name, recipe in RECIPES.items():
        if not (models / f"{name}.pt").exists():
            t0 = time.time()
            model, _ = fit_base(load_recipe(ROOT / "recipes" / recipe))
            torch.save(model.checkpoint(), models / f"{name}.pt.tmp")
            os.replace(models / f"{name}.pt.tmp", models / f"{name}.pt")
            took[name] = round(time.time() - t0, 1)
    if harmonic and not (models / "v2.pt").exists():
        t0 = time.time()
        v1 = embedder_from_checkpoint(load_torch_checkpoint(models / "v1.pt"))
        init = embedder_from_checkpoint(load_torch_checkpoint(models / "v2-base.pt"))
        v2, _ = fit_harmonic(load_recipe(ROOT / "recipes" / "harmonic-tiny.yaml"), TorchEncoder(v1), init)
        torch.save(v2.checkpoint(), models / "v2.pt.tmp")
        os.replace(models / "v2.pt.tmp", models / "v2.pt")
        took["v2"] = round(time.time() - t0, 1)
    return took


def encoders(models: Path | None, registry: Path | None, names: set[str]) -> dict:
    """name -> object with ``encode(images)``: checkpoints in ``models`` or versions of ``registry``."""
    from harmony.models.embedder import embedder_from_checkpoint
    from harmony.models.encode import TorchEncoder
    from harmony.models.loading import load_encoder, load_torch_checkpoint

    if registry is not None:
        from harmony.registry import Registry

        reg = Registry.open(registry)
        return {n: load_encoder(reg, n) for n in names}
    return {n: TorchEncoder(embedder_from_checkpoint(load_torch_checkpoint(models / f"{n}.pt"))) for n in names}


def measure(old: np.ndarray, new: np.ndarray, labels: np.ndarray, seeds: list[int], src: str, dst: str,
            png: Path | None) -> dict:
    from harmony.migration.curve import order_curves, plot_backfill_curves

    ids = np.unique(labels)
    per_seed = []
    for s in seeds:
        keep = np.isin(labels, np.random.default_rng(s).choice(ids, min(GALLERY_IDENTITIES, ids.size), replace=False))
        rep = order_curves(old[keep], new[keep], labels[keep].astype(str), ORDERS, seed=s, far=FAR,
                           source=src, target=dst)
        per_seed.append(rep.as_dict())
        if png is not None and s == seeds[0]:
            plot_backfill_curves(rep, png)
        d = rep.uncertainty_vs_random()
        areas = ", ".join(f"{c.order} {c.auc_top1:.4f}/{c.auc_val:.4f}" for c in rep.curves)
        print(f"{src} -> {dst} seed {s}: {areas}; uncertainty - random {d['auc_top1']:+.4f}/{d['auc_val']:+.4f}",
              flush=True)
    return {"pair": f"{src} -> {dst}", "seeds": seeds, "runs": per_seed, "png": str(png) if png else None}


def summarise(pairs: list[dict]) -> list[dict]:
    """Per pair and order: mean +- std over seeds of both areas, the curve's ends, and uncertainty - random."""
    rows = []
    for p in pairs:
        for o in ORDERS:
            cs = [next(c for c in r["curves"] if c["order"] == o) for r in p["runs"]]
            top, val = [c["auc_top1"] for c in cs], [c["auc_val"] for c in cs]
            rows.append({"pair": p["pair"], "order": o, "auc_top1": float(np.mean(top)),
                         "auc_top1_std": float(np.std(top)), "auc_val@1e-3": float(np.mean(val)),
                         "auc_val_std": float(np.std(val)), "top1_at_0": float(np.mean([c["top1"][0] for c in cs])),
                         "top1_at_50": float(np.mean([c["top1"][5] for c in cs])),
                         "val_at_0": float(np.mean([c["val"][0] for c in cs])),
                         "val_at_100": float(np.mean([c["val"][-1] for c in cs])), "seeds": len(cs)})
        d = [r["uncertainty_minus_random"] for r in p["runs"]]
        rows.append({"pair": p["pair"], "order": "uncertainty - random",
                     "auc_top1": float(np.mean([x["auc_top1"] for x in d])),
                     "auc_top1_std": float(np.std([x["auc_top1"] for x in d])),
                     "auc_val@1e-3": float(np.mean([x["auc_val"] for x in d])),
                     "auc_val_std": float(np.std([x["auc_val"] for x in d])),
                     "uncertainty_wins_top1": f"{sum(x['auc_top1'] > 0 for x in d)}/{len(d)}",
                     "uncertainty_wins_val": f"{sum(x['auc_val'] > 0 for x in d)}/{len(d)}", "seeds": len(d)})
    return rows


def run(quick: bool = True, seeds: list[int] | None = None, models: Path = MODELS, registry: Path | None = None,
        pairs: list[tuple[str, str]] | None = None, train_harmonic: bool = False,
        png_dir: Path | None = RESULTS.parent, split: str = "test") -> dict:
    """Measure every pair over ``seeds``; ``split`` "val" measures the held-out VAL identities
    instead (where the uncertainty rule was chosen), written beside as backfill_order-val.json."""
    from harmony.data.datamodule import eval_set
    from harmony.recipe import load_recipe

    seeds = seeds if seeds is not None else [0, 1, 2]
    trained = {} if registry is not None else train_missing(models, train_harmonic)
    if pairs is None:
        pairs = [("v1", "v2-base")] + ([("v1", "v2")] if registry is None and (models / "v2.pt").exists() else [])
    test = eval_set(load_recipe(ROOT / "recipes" / RECIPES["v1"]).data, split)
    results = RESULTS if split == "test" else RESULTS.with_name(f"backfill_order-{split}.json")
    enc = encoders(models if registry is None else None, registry, {n for p in pairs for n in p})
    t0 = time.time()
    emb = {n: e.encode(test.images) for n, e in enc.items()}
    embed_s = time.time() - t0
    labels = np.asarray(test.labels)
    measured = []
    for src, dst in pairs:
        png = (Path(png_dir) / f"backfill_order-{src}-{dst}{'' if split == 'test' else '-' + split}.png") \
            if png_dir else None
        measured.append(measure(emb[src], emb[dst], labels, seeds, src, dst, png))
    rows = summarise(measured)
    diffs = [r for r in rows if r["order"] == "uncertainty - random"]
    summary = "; ".join(
        f"{r['pair']}: area under top-1 uncertainty {u['auc_top1']:.4f} vs random {q['auc_top1']:.4f}, under "
        f"VAL@1e-3 {u['auc_val@1e-3']:.4f} vs {q['auc_val@1e-3']:.4f} (mean of {r['seeds']} seeds)"
        for r in diffs
        for u, q in [(next(x for x in rows if x["pair"] == r["pair"] and x["order"] == "uncertainty"),
                      next(x for x in rows if x["pair"] == r["pair"] and x["order"] == "random"))])
    out = {"benchmark": "backfill_order" if split == "test" else f"backfill_order ({split} split)",
           "summary": summary, "rows": rows, "pairs": measured,
           "data": f"{test.key}, {GALLERY_IDENTITIES} identities drawn per seed", "far": FAR,
           "models": str(registry or models), "trained_s": trained, "embed_s": round(embed_s, 1),
           "machine": {"cpus": os.cpu_count()}}
    results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(results, json.dumps(out, indent=2, default=float))
    return out


def _pair(text: str) -> tuple[str, str]:
    a, sep, b = text.partition(":")
    if not sep or not a or not b:
        raise argparse.ArgumentTypeError(f"--pair {text!r}: expected OLD:NEW, e.g. v1:v2")
    return a, b


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--models", type=Path, default=MODELS, help="folder of v1.pt, v2-base.pt [, v2.pt]")
    ap.add_argument("--registry", type=Path, help="use registered versions instead (with --pair)")
    ap.add_argument("--pair", type=_pair, action="append", help="OLD:NEW version names (repeatable)")
    ap.add_argument("--train-harmonic", action="store_true", help="also train the harmonic v2 into --models")
    ap.add_argument("--png-dir", type=Path, default=RESULTS.parent)
    ap.add_argument("--split", choices=("test", "val"), default="test",
                    help="identities measured: test (the report) or val (where the uncertainty rule was chosen)")
    args = ap.parse_args()
    res = run(seeds=args.seeds, models=args.models, registry=args.registry, pairs=args.pair,
              train_harmonic=args.train_harmonic, png_dir=args.png_dir, split=args.split)
    print(res["summary"])
