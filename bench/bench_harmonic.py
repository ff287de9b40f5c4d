"""The harmonic result, measured: does a harmonic v2 beat v1 and stay compatible with it?

For each seed: train v1 (recipes/base-tiny.yaml) and an independent, stronger v2-base
(recipes/base-tiny-large.yaml), then v2 from v1 with recipes/harmonic-tiny.yaml (v1's body carried
as a frozen branch, ``harmonic.v1_branch``), plus alternatives on the same v1/v2-base (``--methods``):
the earlier recipe without the branch, the paper's triplet-only harmonic loss (prototype weight 0)
and BCT (``--method bct``). Every model is scored on the held-out TEST identities (the recipes
were tuned on the separate VAL identities). Reports the 2x2 figures per method and their mean
over seeds, and writes bench/results/harmonic.json.

Tuning: ``--split val --set harmonic.frozen_stages=2`` scores one candidate (its name is its
overrides) on the VAL identities instead; val seeds pool apart (``harmonic-val-seed<N>-<key>.json``,
summary in results/harmonic-val.json), so a tuning run never enters the test figures.

Run: ``python bench/bench_harmonic.py`` (2 seeds) or ``--full`` (3 seeds); ``--seeds 0 1 2``. Each seed is
saved to results/harmonic-seed<N>-<key>.json, the key naming the recipes and the training precision
(bench/seed_pool.py); the summary pools every saved seed of that key (``--pool-only`` just re-summarises).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from harmony.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench.seed_pool, also when run as a script
RESULTS = ROOT / "bench" / "results" / "harmonic.json"
RESULTS_DIR = RESULTS.parent
FARS = (1e-2, 1e-3)
RECIPES = ("base-tiny.yaml", "base-tiny-large.yaml", "harmonic-tiny.yaml")
METHODS = {  # recipe overrides on recipes/harmonic-tiny.yaml; the first is the recipe as shipped
    "v1 branch + harmonic + prototype": {},  # the recipe as shipped
    # the recipe before the v1 branch: v2-base's body alone with a fresh head, pulled 16x onto v1's prototypes
    "no v1 branch (earlier recipe)": {"harmonic.v1_branch": False, "harmonic.head_steps": 200,
                                      "harmonic.prototype_weight": 16.0, "harmonic.positives": "both"},
    "v1 branch, ract + prototype": {"harmonic.loss": "ract"},
    "v1 branch, union positives": {"harmonic.positives": "both"},
    "harmonic (paper, triplet only)": {"harmonic.v1_branch": False, "harmonic.head_steps": 200,
                                       "harmonic.positives": "both", "harmonic.prototype_weight": 0.0},
    "bct": {"harmonic.method": "bct", "harmonic.v1_branch": False, "harmonic.head_steps": 200},
}
MAIN = "v1 branch + harmonic + prototype"
# the trade-off sweep (--sweep): the harmonic loss's weights, progress (VAL(v2,v2)) against compatibility
SWEEP = {f"prototype weight {w:g}": {"harmonic.prototype_weight": float(w)} for w in (0, 4, 16, 64)} | {
    "ract, prototype weight 4": {"harmonic.loss": "ract", "harmonic.prototype_weight": 4.0}}
FRONT_PNG = RESULTS_DIR / "harmonic-tradeoff.png"


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher is better on each)."""
    return [i for i, (x, y) in enumerate(points)
            if not any((x2 >= x and y2 >= y) and (x2 > x or y2 > y) for x2, y2 in points)]


def plot_front(rows: list[dict], far: str, path: Path) -> None:
    """VAL(v2,v2) against VAL(v2->v1) per method (mean over seeds) at one FAR, v1 and v2-base as
    reference points, the Pareto front, the compatibility criterion and the gain_recovered = 0.5 line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = [r for r in rows if r["far"] == far]
    if not sub:
        return
    v1 = sub[0]["VAL(v1,v1)"]
    fig, ax = plt.subplots(figsize=(7, 5.5))
    ax.scatter([v1], [v1], marker="s", color="black", zorder=3)
    ax.annotate("v1", (v1, v1), textcoords="offset points", xytext=(5, -12))
    pts = [(r["VAL(v2->v1)"], r["VAL(v2,v2)"]) for r in sub]
    front = set(pareto([p for p, r in zip(pts, sub) if not r["method"].startswith("v2-base")]))
    methods = [r for r in sub if not r["method"].startswith("v2-base")]
    for i, r in enumerate(methods):
        x, y = r["VAL(v2->v1)"], r["VAL(v2,v2)"]
        ax.scatter([x], [y], color="tab:red" if i in front else "tab:blue", zorder=3)
        ax.annotate(r["method"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    base = next(r for r in sub if r["method"].startswith("v2-base"))
    xs = [r["VAL(v2->v1)"] for r in methods] + [v1]
    left = min(xs) - 0.03
    ax.set_xlim(left, max(xs) + 0.06)
    bx = max(base["VAL(v2->v1)"], left + 0.002)  # an incompatible v2-base sits near 0: pinned to the edge
    ax.scatter([bx], [base["VAL(v2,v2)"]], marker="<", color="grey", zorder=3)
    ax.annotate(f"v2-base (independent), VAL(v2->v1) {base['VAL(v2->v1)']:.3f}", (bx, base["VAL(v2,v2)"]),
                textcoords="offset points", xytext=(6, 4), fontsize=7)
    fr = sorted((pts_ for i, pts_ in enumerate((r["VAL(v2->v1)"], r["VAL(v2,v2)"]) for r in methods) if i in front))
    if len(fr) > 1:
        ax.plot(*zip(*fr), color="tab:red", lw=1, label="Pareto front")
    lo, hi = ax.get_ylim()
    ax.axvline(v1, color="black", ls="--", lw=1, label="criterion: VAL(v2->v1) = VAL(v1,v1)")
    ys = np.linspace(max(lo, v1), hi, 20)
    ax.plot(v1 + 0.5 * (ys - v1), ys, color="tab:green", ls=":", lw=1, label="gain recovered = 0.5")
    ax.set_xlabel(f"VAL(v2->v1) @ FAR {far} (compatibility)")
    ax.set_ylabel(f"VAL(v2,v2) @ FAR {far} (progress)")
    ax.set_title("harmonic v2 trade-off, mean over seeds, held-out test identities")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


WORK = ROOT / "bench" / "_work"  # git-ignored: trained base models, so a sweep reuses them


def cached_base(recipe, seed: int):
    """Train a base recipe for a seed once; later runs (another method set) load it back.
    Returns (model, seconds it took to train)."""
    import torch

    from harmony.models.embedder import Embedder, EmbedderSpec
    from harmony.training.base import fit_base

    key = hashlib.sha256(recipe.to_yaml().encode()).hexdigest()[:12]
    path = WORK / f"base-{recipe.name}-seed{seed}-{key}.pt"
    if path.is_file():
        ck = torch.load(path, weights_only=True)
        model = Embedder(EmbedderSpec.from_dict(ck["spec"]))
        model.load_state_dict(ck["state"])
        return model.eval(), float(ck["seconds"])
    t0 = time.time()
    model, _ = fit_base(recipe)
    secs = time.time() - t0
    WORK.mkdir(parents=True, exist_ok=True)
    torch.save({"spec": model.spec.as_dict(), "state": model.state_dict(), "seconds": secs}, path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)
    return model.eval(), secs


def anatomy(e1: np.ndarray, e2: np.ndarray, labels: np.ndarray) -> dict:
    """Where a cross-version same-identity distance comes from, on held-out identities: the
    offset between an identity's v2 and v1 centres (``bias``: shared by all of its v2 probes, so
    it hurts v2->v1 and not v2v2) and each version's spread around its own centre (``spread``).
    Means of squared L2 over identities; centres are unnormalised means of the identity's images.
    ``bias`` is corrected for the sampling noise of two K-image centres (|mean d|^2 less the
    variance of d = e2 - e1 over K), so an identity whose v2 centre sits on v1's scores ~0."""
    ids = np.unique(labels)
    at = np.searchsorted(ids, labels)
    d = e2 - e1
    k = np.bincount(at).astype(np.float64)
    c1 = np.stack([e1[at == i].mean(0) for i in range(len(ids))])
    c2 = np.stack([e2[at == i].mean(0) for i in range(len(ids))])
    dbar = c2 - c1
    var_d = np.bincount(at, ((d - dbar[at]) ** 2).sum(1)) / np.maximum(k - 1, 1)
    return {"bias": float(((dbar ** 2).sum(1) - var_d / k).mean()),
            "spread_v1": float(((e1 - c1[at]) ** 2).sum(1).mean()),
            "spread_v2": float(((e2 - c2[at]) ** 2).sum(1).mean())}


def one_seed(seed: int, methods: dict, split: str = "test") -> dict:
    from harmony.data.datamodule import eval_set
    from harmony.metrics import compatibility_report, flip_report, identification_report
    from harmony.models.encode import TorchEncoder, encode_array
    from harmony.recipe import load_recipe
    from harmony.training.harmonic import fit_harmonic

    r1 = load_recipe(ROOT / "recipes/base-tiny.yaml").override(seed=seed)
    r2 = load_recipe(ROOT / "recipes/base-tiny-large.yaml").override(seed=seed)
    rh = load_recipe(ROOT / "recipes/harmonic-tiny.yaml").override(seed=seed)
    v1, t_v1 = cached_base(r1, seed)
    v2b, t_v2b = cached_base(r2, seed)
    test = eval_set(rh.data, split)
    e1 = encode_array(v1, test.images)
    e2b = encode_array(v2b, test.images)
    base = compatibility_report(e1, e2b, test.labels, FARS)
    out = {"seed": seed, "split": split, "seconds": {"v1": t_v1, "v2-base": t_v2b}, "v1": {}, "v2-base": {},
           "methods": {}}
    for row in base.rows:
        out["v1"][f"{row.far:g}"] = row.old_old.val
        out["v2-base"][f"{row.far:g}"] = {"own": row.new_new.val, "cross_to_v1": row.new_old.val}
    import copy

    for name, over in methods.items():
        init = copy.deepcopy(v2b)
        t0 = time.time()
        v2, _ = fit_harmonic(rh.override(**over), TorchEncoder(v1), init, old_model=copy.deepcopy(v1))
        secs = time.time() - t0
        e2 = encode_array(v2, test.images)
        rep = compatibility_report(e1, e2, test.labels, FARS)
        ident = identification_report(e1, e2, test.labels)
        flips = flip_report(e1, e2, test.labels)
        out["methods"][name] = {"seconds": secs, **{f"{r.far:g}": {"v2v2": r.new_new.val, "v2->v1": r.new_old.val,
                                                                   "v1v1": r.old_old.val, "compatible": r.compatible,
                                                                   "gain_recovered": r.gain_recovered}
                                                    for r in rep.rows},
                                "top1": {"v1->v1": ident.rows[0].accuracy[1], "v2->v2": ident.rows[1].accuracy[1],
                                         "v2->v1": ident.rows[2].accuracy[1]},
                                "flip_rate": {"new": flips.new.rate, "cross": flips.cross.rate},
                                "anatomy": anatomy(e1, e2, test.labels)}
        out["seconds"][name] = secs
        print(f"seed {seed} {name}: " + ", ".join(
            f"FAR {r.far:g}: v1v1 {r.old_old.val:.3f} v2v2 {r.new_new.val:.3f} v2->v1 {r.new_old.val:.3f}"
            for r in rep.rows), flush=True)
    return out


def candidate(sets: list[str]) -> dict:
    """``KEY=VALUE`` overrides as a method, validated against the recipe (a typo fails here,
    not after the base models trained)."""
    import yaml

    from harmony.recipe import load_recipe, with_sets

    with_sets(load_recipe(ROOT / "recipes/harmonic-tiny.yaml"), sets)
    return {k.strip(): yaml.safe_load(v) for k, _, v in (s.partition("=") for s in sets)}


def recipes_key(precision: str | None = None) -> str:
    """The seed pool of the current recipes at ``precision`` (default: what this machine trains
    them at; bench/seed_pool.py)."""
    from bench.seed_pool import pool_key, training_precision

    paths = [ROOT / "recipes" / name for name in RECIPES]
    return pool_key(paths, precision or training_precision(paths))


def summarise(runs: list[dict]) -> list[dict]:
    """Mean over seeds; each method over the seeds that ran it, next to v1 and v2-base of those seeds.
    The share of the gain recovered is computed per seed from its three VALs, then averaged."""
    from harmony.metrics import gain_recovered

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
            gains = [g for g in (gain_recovered(r["methods"][m][far]["v1v1"], r["methods"][m][far]["v2->v1"],
                                                r["methods"][m][far]["v2v2"]) for r in sub) if g is not None]
            top1 = [r["methods"][m].get("top1") for r in sub if r["methods"][m].get("top1")]
            flips = [r["methods"][m]["flip_rate"]["cross"] for r in sub if "flip_rate" in r["methods"][m]]
            rows.append({"far": far, "method": m, "VAL(v1,v1)": v1m, "VAL(v2,v2)": own,
                         "VAL(v2->v1)": float(np.mean(cross)), "VAL(v2->v1) std": float(np.std(cross)),
                         "gain_recovered": float(np.mean(gains)) if gains else None,
                         "gain_recovered std": float(np.std(gains)) if gains else None,
                         "gain_defined_runs": f"{len(gains)}/{len(sub)}",
                         "top1 v1->v1": float(np.mean([t["v1->v1"] for t in top1])) if top1 else None,
                         "top1 v2->v1": float(np.mean([t["v2->v1"] for t in top1])) if top1 else None,
                         "cross flip rate": float(np.mean(flips)) if flips else None,
                         "v2v2_vs_v2base": bool(own >= v2bm),
                         "kept_of_v2base": own / v2bm if v2bm else None,
                         "compatible_runs": f"{sum(r['methods'][m][far]['compatible'] for r in sub)}/{len(sub)}",
                         "mean_criterion_met": bool(np.mean(cross) >= v1m), "v2_beats_v1": bool(own > v1m),
                         "seeds": " ".join(str(r["seed"]) for r in sub)})
    return rows


def run(quick: bool = True, seeds: list[int] | None = None, methods: dict | None = None,
        pool_only: bool = False, pool_precision: str | None = None, split: str = "test") -> dict:
    """Train the given seeds (each saved to its own file), then summarise every seed of the same
    recipes and precision. ``pool_precision`` (with ``pool_only``): summarise the seeds another
    machine trained at that precision."""
    from bench.seed_pool import pooled_runs, seed_path, training_precision

    if pool_precision and not pool_only:
        raise SystemExit("--precision only selects a pool to summarise: use it with --pool-only")
    precision = pool_precision or training_precision([ROOT / "recipes" / name for name in RECIPES])
    key = recipes_key(precision)
    seeds = [] if pool_only else (seeds if seeds is not None else ([0, 1] if quick else [0, 1, 2]))
    prefix = "harmonic" if split == "test" else f"harmonic-{split}"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        r = one_seed(s, methods or METHODS, split) | {"recipes": key, "precision": precision}
        path = seed_path(RESULTS_DIR, prefix, s, key)
        old = json.loads(path.read_text()) if path.is_file() else {}
        if old:  # the same pool: keep the methods measured before (a sweep adds to them)
            r["methods"] = old["methods"] | r["methods"]
            r["seconds"] = old["seconds"] | r["seconds"]
        atomic_write_text(path, json.dumps(r, indent=2, default=float))
    runs = pooled_runs(RESULTS_DIR, prefix, key)
    if not runs:
        raise SystemExit(f"no seed measured with the current recipes at {precision} ({key}); run without "
                         "--pool-only, or pick the pool of another precision with --precision")
    rows = summarise(runs)
    main = [r for r in rows if r["method"] == MAIN] or [r for r in rows if not r["method"].startswith("v2-base")]

    def gain(r: dict) -> str:
        return ("undefined (v2 not better)" if r["gain_recovered"] is None else
                f"{r['gain_recovered']:.2f} +- {r['gain_recovered std']:.2f}")

    summary = "; ".join(f"FAR {r['far']}: VAL(v1,v1) {r['VAL(v1,v1)']:.3f}, VAL(v2,v2) {r['VAL(v2,v2)']:.3f}, "
                        f"VAL(v2->v1) {r['VAL(v2->v1)']:.3f}, gain recovered {gain(r)} "
                        f"(mean +- std over seeds {r['seeds']})" for r in main)
    out = {"benchmark": "harmonic", "split": split, "summary": summary, "rows": rows, "runs": runs,
           "recipes": key, "precision": precision, "machine": {"cpus": os.cpu_count()}}
    if split != "test":  # tuning figures: their own file, never the benchmark's result or plot
        atomic_write_text(RESULTS.with_name(f"{prefix}.json"), json.dumps(out, indent=2, default=float))
        return out
    atomic_write_text(RESULTS, json.dumps(out, indent=2, default=float))
    plot_front(rows, f"{min(FARS):g}", FRONT_PNG)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--seeds", type=int, nargs="*")
    ap.add_argument("--methods", nargs="*", choices=list(METHODS), help="default: all")
    ap.add_argument("--sweep", action="store_true", help="the trade-off sweep over the loss weights (SWEEP)")
    ap.add_argument("--pool-only", action="store_true", help="train nothing; summarise the saved seeds")
    ap.add_argument("--precision", choices=["bf16-mixed", "32-true"],
                    help="with --pool-only: the pool trained at this precision (default: this machine's)")
    ap.add_argument("--split", choices=["test", "val"], default="test",
                    help="val: score on the tuning identities, pooled apart from the test figures")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="one candidate: overrides on harmonic-tiny.yaml (repeatable), e.g. harmonic.frozen_stages=2")
    args = ap.parse_args()
    methods = SWEEP if args.sweep else ({m: METHODS[m] for m in args.methods} if args.methods else None)
    if args.sets:
        from harmony.errors import InvalidInput

        try:
            methods = {" ".join(sorted(args.sets)): candidate(args.sets)}
        except InvalidInput as e:
            raise SystemExit(f"error: {e}") from None
    res = run(quick=not args.full, seeds=args.seeds, methods=methods,
              pool_only=args.pool_only, pool_precision=args.precision, split=args.split)
    print(res["summary"])
