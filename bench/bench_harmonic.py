"""The harmonic result, measured: does a harmonic v2 beat v1 and stay compatible with it?

For each seed: train v1 (recipes/base-tiny.yaml) and an independent, stronger v2-base
(recipes/base-tiny-large.yaml), then v2 from v1 with recipes/harmonic-tiny.yaml, plus two
alternatives on the same v1/v2-base: the paper's triplet-only harmonic loss (prototype weight 0)
and BCT (``--method bct``). Every model is scored on the held-out TEST identities (the recipes
were tuned on the separate VAL identities). Reports the 2x2 figures per method and their mean
over seeds, and writes bench/results/harmonic.json.

Run: ``python bench/bench_harmonic.py`` (2 seeds) or ``--full`` (3 seeds); ``--seeds 0 1 2``. Each seed is
saved to results/harmonic-seed<N>.json with a key of the recipes; the summary pools every saved seed
of the current recipes (``--pool-only`` just re-summarises).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from harmony.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "harmonic.json"
RESULTS_DIR = RESULTS.parent
FARS = (1e-2, 1e-3)
RECIPES = ("base-tiny.yaml", "base-tiny-large.yaml", "harmonic-tiny.yaml")
METHODS = {
    "harmonic+prototype": {},
    "harmonic (paper, triplet only)": {"harmonic.prototype_weight": 0.0},
    "bct": {"harmonic.method": "bct"},
}


def one_seed(seed: int, methods: dict) -> dict:
    from harmony.data.datamodule import eval_set
    from harmony.metrics import compatibility_report
    from harmony.models.encode import TorchEncoder, encode_array
    from harmony.recipe import load_recipe
    from harmony.training.base import fit_base
    from harmony.training.harmonic import fit_harmonic

    r1 = load_recipe(ROOT / "recipes/base-tiny.yaml").override(seed=seed)
    r2 = load_recipe(ROOT / "recipes/base-tiny-large.yaml").override(seed=seed)
    rh = load_recipe(ROOT / "recipes/harmonic-tiny.yaml").override(seed=seed)
    t0 = time.time()
    v1, _ = fit_base(r1)
    t_v1 = time.time() - t0
    t0 = time.time()
    v2b, _ = fit_base(r2)
    t_v2b = time.time() - t0
    test = eval_set(rh.data, "test")
    e1 = encode_array(v1, test.images)
    e2b = encode_array(v2b, test.images)
    base = compatibility_report(e1, e2b, test.labels, FARS)
    out = {"seed": seed, "seconds": {"v1": t_v1, "v2-base": t_v2b}, "v1": {}, "v2-base": {}, "methods": {}}
    for row in base.rows:
        out["v1"][f"{row.far:g}"] = row.old_old.val
        out["v2-base"][f"{row.far:g}"] = {"own": row.new_new.val, "cross_to_v1": row.new_old.val}
    import copy

    for name, over in methods.items():
        init = copy.deepcopy(v2b)
        t0 = time.time()
        v2, _ = fit_harmonic(rh.override(**over), TorchEncoder(v1), init)
        secs = time.time() - t0
        rep = compatibility_report(e1, encode_array(v2, test.images), test.labels, FARS)
        out["methods"][name] = {"seconds": secs, **{f"{r.far:g}": {"v2v2": r.new_new.val, "v2->v1": r.new_old.val,
                                                                   "v1v1": r.old_old.val, "compatible": r.compatible}
                                                    for r in rep.rows}}
        out["seconds"][name] = secs
        print(f"seed {seed} {name}: " + ", ".join(
            f"FAR {r.far:g}: v1v1 {r.old_old.val:.3f} v2v2 {r.new_new.val:.3f} v2->v1 {r.new_old.val:.3f}"
            for r in rep.rows), flush=True)
    return out


def recipes_key() -> str:
    """Seeds are pooled only when they ran the same recipes (a recipe edit starts a new pool)."""
    import yaml  # the parsed content, so an edited comment keeps the pool

    content = {name: yaml.safe_load((ROOT / "recipes" / name).read_text()) for name in RECIPES}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def pooled_runs(key: str) -> list[dict]:
    """Every per-seed file measured with these recipes, so seeds run on different days compose."""
    runs = [json.loads(f.read_text()) for f in sorted(RESULTS_DIR.glob("harmonic-seed*.json"))]
    return sorted((r for r in runs if r.get("recipes") == key), key=lambda r: r["seed"])


def summarise(runs: list[dict]) -> list[dict]:
    """Mean over seeds; each method over the seeds that ran it, next to v1 and v2-base of those seeds."""
    rows = []
    methods = list(dict.fromkeys(m for r in runs for m in r["methods"]))
    for far in (f"{f:g}" for f in FARS):
        v1 = np.mean([r["v1"][far] for r in runs])
        v2b = np.mean([r["v2-base"][far]["own"] for r in runs])
        rows.append({"far": far, "method": "v2-base (independent)", "VAL(v1,v1)": v1, "VAL(v2,v2)": v2b,
                     "VAL(v2->v1)": np.mean([r["v2-base"][far]["cross_to_v1"] for r in runs]),
                     "kept_of_v2base": 1.0, "compatible_runs": "-", "seeds": " ".join(str(r["seed"]) for r in runs)})
        for m in methods:
            sub = [r for r in runs if m in r["methods"]]
            v1m = np.mean([r["v1"][far] for r in sub])
            v2bm = np.mean([r["v2-base"][far]["own"] for r in sub])
            own = np.mean([r["methods"][m][far]["v2v2"] for r in sub])
            cross = [r["methods"][m][far]["v2->v1"] for r in sub]
            rows.append({"far": far, "method": m, "VAL(v1,v1)": v1m, "VAL(v2,v2)": own,
                         "VAL(v2->v1)": float(np.mean(cross)), "VAL(v2->v1) std": float(np.std(cross)),
                         "kept_of_v2base": own / v2bm if v2bm else None,
                         "compatible_runs": f"{sum(r['methods'][m][far]['compatible'] for r in sub)}/{len(sub)}",
                         "mean_criterion_met": bool(np.mean(cross) >= v1m), "v2_beats_v1": bool(own > v1m),
                         "seeds": " ".join(str(r["seed"]) for r in sub)})
    return rows


def run(quick: bool = True, seeds: list[int] | None = None, methods: dict | None = None,
        pool_only: bool = False) -> dict:
    """Train the given seeds (each saved to its own file), then summarise every seed of the same recipes."""
    key = recipes_key()
    seeds = [] if pool_only else (seeds if seeds is not None else ([0, 1] if quick else [0, 1, 2]))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        r = one_seed(s, methods or METHODS) | {"recipes": key}
        atomic_write_text(RESULTS_DIR / f"harmonic-seed{s}.json", json.dumps(r, indent=2, default=float))
    runs = pooled_runs(key)
    if not runs:
        raise SystemExit(f"no seed measured with the current recipes ({key}); run without --pool-only")
    rows = summarise(runs)
    main = [r for r in rows if r["method"] == "harmonic+prototype"]
    summary = "; ".join(f"FAR {r['far']}: VAL(v1,v1) {r['VAL(v1,v1)']:.3f}, VAL(v2,v2) {r['VAL(v2,v2)']:.3f}, "
                        f"VAL(v2->v1) {r['VAL(v2->v1)']:.3f} (mean over seeds {r['seeds']})" for r in main)
    out = {"benchmark": "harmonic", "summary": summary, "rows": rows, "runs": runs, "recipes": key,
           "machine": {"cpus": os.cpu_count()}}
    atomic_write_text(RESULTS, json.dumps(out, indent=2, default=float))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--seeds", type=int, nargs="*")
    ap.add_argument("--methods", nargs="*", choices=list(METHODS), help="default: all")
    ap.add_argument("--pool-only", action="store_true", help="train nothing; summarise the saved seeds")
    args = ap.parse_args()
    res = run(quick=not args.full, seeds=args.seeds,
              methods={m: METHODS[m] for m in args.methods} if args.methods else None, pool_only=args.pool_only)
    print(res["summary"])
