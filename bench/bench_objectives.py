"""Objectives at the same budget: triplet (FaceNet) vs SphereFace vs CosFace vs ArcFace.

Each objective trains recipes/base-tiny.yaml's network on the same synthetic identities, with the
same steps, batches (P x K) and seed; only ``train.loss`` (and its margin knobs, from
recipes/base-tiny-<loss>.yaml) differ. Scored by VAL@1e-3 and VAL@1e-2 on the VAL identities (what
margins and scales may be tuned on: ``--sweep`` varies s there and never looks at test) and on the
held-out TEST identities (the reported figure), next to the size of each margin loss's
training-only classifier (n_train_identities x dim, not registered).

Run: ``python bench/bench_objectives.py`` (quick: 3 epochs each) or ``--full`` (the recipes as
shipped, 6 epochs); ``--only arcface cosface``; ``--sweep`` for the VAL-only scale sweep.
Writes bench/results/objectives.json (``--sweep``: objectives-sweep.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harmony.io import atomic_write_text

RESULTS = ROOT / "bench" / "results" / "objectives.json"
SWEEP = RESULTS.with_name("objectives-sweep.json")
VAL = RESULTS.with_name("objectives-val.json")  # tuning candidates (--split val --set ...)
RECIPES = {"triplet": "base-tiny.yaml", "sphereface": "base-tiny-sphereface.yaml",
           "cosface": "base-tiny-cosface.yaml", "arcface": "base-tiny-arcface.yaml"}
FARS = (1e-3, 1e-2)
SWEEP_SCALES = (16.0, 30.0, 64.0)


def recipe_for(objective: str, quick: bool, sets: tuple[str, ...] = ()):
    from harmony.recipe import load_recipe, with_sets

    r = with_sets(load_recipe(ROOT / "recipes" / RECIPES[objective]), sets)
    return r.override(**{"train.epochs": 3}) if quick else r


def _same_budget(recipes: dict) -> None:
    """Everything but the objective must match, or the comparison is not at the same budget."""
    def key(r):
        d = r.to_dict()
        t = d["train"]
        d["train"] = {k: v for k, v in t.items() if k not in ("loss", "margin_loss", "margin", "mining", "p", "k")}
        d["train"]["images_per_step"] = t["p"] * t["k"]  # P x K may differ (128 x 2 for a classifier), not the batch
        return json.dumps({k: d[k] for k in ("seed", "data", "model", "train")}, sort_keys=True)

    keys = {key(r) for r in recipes.values()}
    if len(keys) != 1:
        raise SystemExit("the objective recipes differ in more than the objective: " + ", ".join(recipes))


def measure(recipe, splits: tuple[str, ...] = ("val", "test")) -> dict:
    """Train (no registry, nothing on disk) and score VAL@FAR on the named splits."""
    from harmony.data.datamodule import eval_set
    from harmony.metrics import val_at_far
    from harmony.models.encode import encode_array
    from harmony.training.base import fit_base, margin_params

    sizes: dict = {}
    t0 = time.time()
    model, history = fit_base(recipe, sizes=sizes)
    out = {"objective": recipe.train.loss, "train_seconds": round(time.time() - t0, 1),
           "steps": recipe.train.epochs * recipe.train.steps_per_epoch, "pk": f"{recipe.train.p}x{recipe.train.k}"}
    if recipe.train.loss != "triplet":
        p = margin_params(recipe.train)
        out |= {"scale": p.scale, "margin": p.margin}
    else:
        out |= {"margin": recipe.train.margin}
    for split in splits:
        s = eval_set(recipe.data, split)
        emb = encode_array(model, s.images, batch_size=recipe.eval.batch_size)
        for r in val_at_far(emb, s.labels, far=list(FARS)):
            out[f"{split}_val@{r.far:g}"] = round(float(r.val), 4)
    clf = sizes.get("classifier")
    out["classifier_parameters"] = clf["parameters"] if clf else 0
    out["classifier_mb"] = clf["megabytes"] if clf else 0.0
    out["val_history"] = [round(h["val"], 4) for h in history]
    return out


def run(quick: bool = True, only: list[str] | None = None) -> dict:
    recipes = {o: recipe_for(o, quick) for o in (only or RECIPES)}
    _same_budget(recipes)
    kept = {}
    for o, r in recipes.items():
        print(f"training {o} ({r.train.epochs} x {r.train.steps_per_epoch} steps)", flush=True)
        kept[o] = measure(r)
        print(json.dumps(kept[o]), flush=True)
        _write(kept, quick)
    return _write(kept, quick)


def _write(rows_by: dict, quick: bool) -> dict:
    """Merge with what another process (``--only``) wrote meanwhile, then replace atomically."""
    old = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if old.get("quick") == quick:
        rows_by = {r["objective"]: r for r in old.get("rows", [])} | rows_by
    rows = [rows_by[o] for o in RECIPES if o in rows_by]
    summary = "; ".join(f"{r['objective']}: test VAL@1e-3 {r['test_val@0.001']:.3f} (1e-2 {r['test_val@0.01']:.3f})"
                        + (f", classifier {r['classifier_parameters']:,} params" if r["classifier_parameters"] else "")
                        for r in rows)
    out = {"benchmark": "objectives", "quick": quick, "summary": summary, "rows": rows,
           "ablations": old.get("ablations", {}),
           "command": "python bench/bench_objectives.py" + ("" if quick else " --full"),
           "note": "same backbone, data, steps, images per step (P x K) and seed per objective; the margin losses' "
                   "P x K = 128 x 2 was chosen on the VAL identities; s = 30 and the papers' m, not swept (--sweep "
                   "sweeps s on VAL only); test identities are held out"}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, json.dumps(out, indent=2, default=float))
    return out


def sweep(quick: bool = True, scales: tuple[float, ...] = SWEEP_SCALES, only: list[str] | None = None) -> dict:
    """The scale s of each margin loss on the VAL identities only (test is never scored here)."""
    rows = []
    for o in only or [o for o in RECIPES if o != "triplet"]:
        for s in scales:
            r = recipe_for(o, quick, (f"train.margin_loss.scale={s}",))
            rows.append(measure(r, splits=("val",)))
            print(json.dumps(rows[-1]), flush=True)
            atomic_write_text(SWEEP, json.dumps({"benchmark": "objectives-sweep", "quick": quick, "rows": rows},
                                                indent=2, default=float))
    return {"rows": rows}


def candidate(quick: bool, sets: tuple[str, ...], only: list[str] | None = None) -> list[dict]:
    """One tuning candidate per objective (the recipe with ``sets``), scored on VAL only and merged
    into objectives-val.json by (objective, overrides, budget): the test identities never see it."""
    from harmony.errors import HarmonyError

    rows = []
    for o in only or [o for o in RECIPES if o != "triplet"]:
        try:
            r = recipe_for(o, quick, sets)
        except HarmonyError as e:  # a typo in a key or value: say so before anything trains
            raise SystemExit(f"error: {e}") from None
        row = measure(r, splits=("val",)) | {"sets": sorted(sets), "quick": quick}
        print(json.dumps(row), flush=True)
        old = json.loads(VAL.read_text())["rows"] if VAL.is_file() else []
        same = lambda x: (x["objective"], x["sets"], x["quick"]) == (row["objective"], row["sets"], quick)  # noqa: E731
        kept = [x for x in old if not same(x)] + [row]
        atomic_write_text(VAL, json.dumps({"benchmark": "objectives-val", "rows": kept}, indent=2, default=float))
        rows.append(row)
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the recipes as shipped (6 epochs) instead of 3 epochs")
    ap.add_argument("--only", nargs="+", choices=list(RECIPES), help="just these objectives")
    ap.add_argument("--sweep", action="store_true", help="VAL-only sweep of the margin losses' scale s")
    ap.add_argument("--split", choices=("test", "val"), default="test",
                    help="val: score one candidate (the --set overrides) on the VAL identities only, into "
                         "objectives-val.json; test: the reported figures")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="a recipe override for --split val, e.g. train.margin_loss.warmup_steps=200 (repeatable)")
    a = ap.parse_args()
    if a.sets and a.split != "val":
        raise SystemExit("error: --set tunes a candidate, which is scored on the VAL identities only: add --split val")
    if a.sweep:
        sweep(not a.full, only=a.only)
    elif a.split == "val":
        candidate(not a.full, tuple(a.sets), a.only)
    else:
        print(run(not a.full, a.only)["summary"])
