"""FaceNet Table 4 for a tiny trained version: VAL@1e-3 against JPEG quality and face size, plus
int8 against float32 VAL (128 bytes per face).

The version: ``HARMONY_BENCH_REGISTRY`` (a registry root) and ``HARMONY_BENCH_VERSION`` (default
``v1``) when set; otherwise base-tiny v1 (recipes/base-tiny.yaml, about 90 s on 2 idle cores) is
trained into bench/_work/robustness-registry (git-ignored) once and reused while the recipe is unchanged.
Held-out synthetic TEST identities (never seen in training): 300 x 8 (``--full``: 1000 x 8) for
the robustness table, read at 256 px and shown to the 64 px model; 300 x 8 at 64 px for int8.
Writes bench/results/robustness.json and robustness.png.

Run: ``nice -n 10 python -m bench robustness`` (or ``python bench/bench_robustness.py [--full]``).
The same figures from the CLI: ``harmony eval robustness --version v1 --synthetic 300 --plot t4.png``
and ``harmony eval --version v1 --synthetic 300 --quantize int8``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from harmony.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "robustness.json"
PNG = RESULTS.with_suffix(".png")
OWN_REGISTRY = ROOT / "bench" / "_work" / "robustness-registry"  # git-ignored, like bench_harmonic's models
RECIPE = ROOT / "recipes" / "base-tiny.yaml"


def version_under_test() -> tuple[object, str, dict]:
    """(registry, version name, how it was obtained)."""
    from harmony.recipe import load_recipe
    from harmony.registry import Registry
    from harmony.training.base import train_base

    env = os.environ.get("HARMONY_BENCH_REGISTRY")
    if env:
        name = os.environ.get("HARMONY_BENCH_VERSION", "v1")
        reg = Registry.open(env)
        return reg, reg.get_version(name).name, {"registry": env, "trained_here": False}
    key = hashlib.sha256(RECIPE.read_bytes()).hexdigest()[:12]
    stamp = OWN_REGISTRY / "recipe.sha"
    if OWN_REGISTRY.exists() and (not stamp.is_file() or stamp.read_text() != key):
        shutil.rmtree(OWN_REGISTRY)  # another recipe: train again
    reg = Registry.open(OWN_REGISTRY)
    info = {"registry": str(OWN_REGISTRY), "recipe": "recipes/base-tiny.yaml", "trained_here": True}
    if not any(v.name == "v1" for v in reg.list_versions()):
        t0 = time.time()
        train_base(reg, load_recipe(RECIPE), "v1")
        info["train_s"] = round(time.time() - t0, 1)
        stamp.write_text(key)
    return reg, "v1", info


def run(quick: bool = True) -> dict:
    from harmony.evaluation import embed_cached, evaluate, synthetic_set
    from harmony.evaluation.quantize import quantize_report
    from harmony.evaluation.robustness import robustness

    reg, name, info = version_under_test()
    n_ids = 300 if quick else 1000
    t0 = time.time()
    rob = robustness(reg, name, synthetic_set(n_ids, 8), plot=PNG)
    rob_s = time.time() - t0
    data = synthetic_set(300, 8)
    ev = evaluate(reg, name, data=data, fars=(1e-2, 1e-3), record=False)
    quant = quantize_report(data, {name: embed_cached(reg, name, data.source)}, ev.fars)
    rows = [{"condition": r.condition.label, "kind": r.condition.kind, "value": r.condition.value,
             "val@1e-3": round(r.val.val, 4), "delta": round(r.delta, 4), "t*": round(r.val.threshold, 4)}
            for r in rob.rows]
    rows += [{"condition": f"float32 vs int8 at FAR {q.far:g}", "kind": "int8", "value": q.far,
              "val_float32": round(q.float32.val, 4), "val_int8": round(q.int8.val, 4), "delta": round(q.delta, 4)}
             for q in quant.rows]
    jp, px = rob.of("jpeg"), rob.of("pixels")
    i8 = next(q for q in quant.rows if q.far == 1e-3)
    summary = (f"{name} (base-tiny, 64 px input) on {rob.n_identities} held-out synthetic identities x 8, VAL@1e-3: "
               f"undegraded {rob.reference.val.val:.3f}; JPEG q{jp[0].condition.value} {jp[0].val.val:.3f} .. "
               f"q{jp[-1].condition.value} {jp[-1].val.val:.3f}; {px[0].condition.label} {px[0].val.val:.3f} .. "
               f"{px[-1].condition.label} {px[-1].val.val:.3f}. int8 (128 B/face, per-dimension scale) "
               f"{i8.int8.val:.4f} vs float32 {i8.float32.val:.4f} ({100 * i8.delta:+.2f} pts).")
    out = {"benchmark": "robustness", "summary": summary, "version": name, "source": info,
           "robustness": rob.as_dict(), "quantize": quant.as_dict(), "robustness_s": round(rob_s, 1),
           "plot": str(PNG.relative_to(ROOT)), "rows": rows}
    atomic_write_text(RESULTS, json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true")
    res = run(quick=not ap.parse_args().full)
    print(res["summary"])
    for r in res["rows"]:
        print(r)
