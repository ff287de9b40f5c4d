"""FaceNet's Figure 4, measured: VAL@1e-3 against multiply-adds across the model zoo.

Each zoo backbone trains with its tiny recipe (recipes/zoo-<name>-tiny.yaml: base-tiny's data and
optimiser, the same steps and identities for every model; inputs scaled from the paper's sizes by
about 64/224, widths cut to fit 2 CPU cores), with harmony's own ``fit_base``, and is scored with
``evaluate_held_out`` (VAL@FAR on the held-out test identities). base-tiny's small CNN is the
reference row. Multiply-adds and parameters are counted (``harmony.models.complexity.count``) at
the tiny input and width each model trained at. Writes bench/results/zoo.json and the plot
bench/results/zoo-val-vs-madds.png (log x axis).

Run: ``python -m bench zoo`` (quick: 1 epoch of 100 steps each) or ``python bench/bench_zoo.py --full``
(the recipes as shipped, 6 epochs); ``--epochs 3``; ``--only nn2 nns2``. Each trained row is kept in bench/_work/ under
a key of its recipe, so a rerun with the same recipes only trains what is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

from harmony.io import atomic_write_text, atomic_writer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "zoo.json"
PNG = RESULTS.parent / "zoo-val-vs-madds.png"
WORK = ROOT / "bench" / "_work"
ZOO = ("nn1", "nn2", "nn3", "nn4", "nns1", "nns2", "mobilefacenet")
REFERENCE = "base-tiny.yaml"  # small_cnn, harmony's v1 recipe
QUICK_EPOCHS = 1
FAR = 1e-3


def recipe_path(name: str) -> Path:
    return ROOT / "recipes" / (REFERENCE if name == "small_cnn" else f"zoo-{name}-tiny.yaml")


def one(name: str, epochs: int | None) -> dict:
    """Train one backbone's tiny recipe (cached by recipe) and score it on the held-out identities."""
    from harmony.models.complexity import count
    from harmony.recipe import load_recipe
    from harmony.training.base import evaluate_held_out, fit_base

    recipe = load_recipe(recipe_path(name))
    if epochs is not None:
        recipe = recipe.override(**{"train.epochs": epochs})
    key = hashlib.sha256(recipe.to_yaml().encode()).hexdigest()[:12]
    cache = WORK / f"zoo-{name}-{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    t0 = time.time()
    model, _ = fit_base(recipe)
    secs = time.time() - t0
    metrics, baseline, _ = evaluate_held_out(model, recipe)
    size = recipe.data.image_size
    params, madds, _ = count(recipe.model.backbone, dict(recipe.model.backbone_args), (size, size), recipe.model.dim)
    row = {"backbone": recipe.model.backbone, "recipe": recipe_path(name).name, "input": size,
           "backbone_args": dict(recipe.model.backbone_args), "params": params, "mult_adds": madds,
           f"VAL@{FAR:g}": metrics[f"val@{FAR:g}"], "VAL@0.01": metrics.get("val@0.01"),
           f"raw pixels VAL@{FAR:g}": baseline[f"val@{FAR:g}"], "train_s": round(secs, 1),
           "steps": recipe.train.epochs * recipe.train.steps_per_epoch, "epochs": recipe.train.epochs}
    WORK.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, json.dumps(row, indent=2, default=float))
    print(f"{name}: {madds / 1e6:.1f}M mult-adds, VAL@{FAR:g} {row[f'VAL@{FAR:g}']:.3f}, {secs:.0f} s", flush=True)
    return row


def plot(rows: list[dict], path: Path, title: str) -> None:
    """VAL@1e-3 against multiply-adds (log x), one labelled point per backbone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, r in enumerate(sorted(rows, key=lambda r: r["mult_adds"])):
        x, y = r["mult_adds"], r[f"VAL@{FAR:g}"]
        ref = r["backbone"] == "small_cnn"
        ax.scatter([x], [y], color="grey" if ref else "tab:blue", marker="s" if ref else "o", zorder=3)
        ax.annotate(f"{r['backbone']} ({r['input']} px)", (x, y), textcoords="offset points",
                    xytext=(5, 5 if i % 2 == 0 else -11), fontsize=8)  # neighbours alternate above and below
    ax.set_xscale("log")
    ax.set_xlabel("multiply-adds per image at the tiny input (log scale)")
    ax.set_ylabel(f"VAL @ FAR {FAR:g}, held-out identities")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_writer(path) as f:
        fig.savefig(f, format="png")


def run(quick: bool = True, only: list[str] | None = None, epochs: int | None = None) -> dict:
    """Quick: every recipe at QUICK_EPOCHS; full: as shipped; ``epochs`` overrides both."""
    epochs = epochs if epochs is not None else (QUICK_EPOCHS if quick else None)
    names = ["small_cnn", *ZOO] if only is None else list(only)
    rows = [one(n, epochs) for n in names]
    steps = sorted({r["steps"] for r in rows})
    rows.sort(key=lambda r: r["mult_adds"])
    best = max(rows, key=lambda r: r[f"VAL@{FAR:g}"])
    summary = (f"VAL@{FAR:g} on the held-out test identities after {'/'.join(map(str, steps))} steps of P x K = 32 x 8 "
               f"each: " + ", ".join(f"{r['backbone']} {r[f'VAL@{FAR:g}']:.3f} at {r['mult_adds'] / 1e6:.1f}M "
                                    f"mult-adds" for r in rows) + f"; best {best['backbone']}")
    out = {"benchmark": "zoo", "summary": summary, "rows": rows, "quick": quick, "machine": {"cpus": os.cpu_count()}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, json.dumps(out, indent=2, default=float))
    plot(rows, PNG, f"model zoo at one small budget ({'/'.join(map(str, steps))} steps): VAL@{FAR:g} vs multiply-adds")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the recipes as shipped (6 epochs) instead of 1")
    ap.add_argument("--epochs", type=int, help="train every recipe this many epochs (of 100 steps)")
    ap.add_argument("--only", nargs="*", choices=["small_cnn", *ZOO], help="default: small_cnn and the whole zoo")
    args = ap.parse_args()
    print(run(quick=not args.full, only=args.only, epochs=args.epochs)["summary"])
