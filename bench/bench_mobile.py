"""FaceNet's future work, measured: a phone model whose embeddings match the server's v1 gallery.

For each seed: the server v1 (recipes/base-tiny-large.yaml, small CNN 32-64-128-128 at 64 px), an
independent phone base (recipes/base-tiny-mobile.yaml, MobileFaceNet at half width, 64 px), then
the phone v2 trained harmonic against the frozen server v1 from that base
(recipes/harmonic-mobile.yaml), as `harmony train harmonic --from server --init phone-base` does.
Scored on the held-out TEST identities: the 2x2 table (server,server), (phone,phone),
(phone->server), the share of the gain recovered where the phone model is better than the server
(else undefined: a phone model is usually the weaker one, and then the question is only whether
its queries still match the server's gallery as well as the server's own do), top-1
identification of phone queries on the server gallery, and the multiply-adds per face of both
networks, measured (harmony/models/complexity.py).

Run: ``python bench/bench_mobile.py`` (seed 0) or ``--full`` (seeds 0 1 2); writes
bench/results/mobile.json. Base models are cached in bench/_work/ (shared with bench_harmonic).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from harmony.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "mobile.json"
FARS = (1e-2, 1e-3)


def one_seed(seed: int) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_harmonic import cached_base

    from harmony.data.datamodule import eval_set
    from harmony.metrics import compatibility_report, identification_report
    from harmony.models.complexity import embedder_cost
    from harmony.models.encode import TorchEncoder, encode_array
    from harmony.recipe import load_recipe
    from harmony.training.harmonic import fit_harmonic

    rs = load_recipe(ROOT / "recipes/base-tiny-large.yaml").override(seed=seed)
    rp = load_recipe(ROOT / "recipes/base-tiny-mobile.yaml").override(seed=seed)
    rh = load_recipe(ROOT / "recipes/harmonic-mobile.yaml").override(seed=seed)
    server, t_s = cached_base(rs, seed)
    phone_base, t_p = cached_base(rp, seed)
    test = eval_set(rh.data, "test")
    e_s, e_pb = encode_array(server, test.images), encode_array(phone_base, test.images)
    base = compatibility_report(e_s, e_pb, test.labels, FARS)
    import copy

    t0 = time.time()
    phone, _ = fit_harmonic(rh, TorchEncoder(server), copy.deepcopy(phone_base))
    t_h = time.time() - t0
    e_p = encode_array(phone, test.images)
    rep = compatibility_report(e_s, e_p, test.labels, FARS)
    ident = identification_report(e_s, e_p, test.labels)
    cs, cp = embedder_cost(server.spec), embedder_cost(phone.spec)
    out = {"seed": seed, "seconds": {"server": t_s, "phone-base": t_p, "phone-v2": t_h},
           "cost": {"server": cs, "phone": cp, "mult_adds_ratio": cp["mult_adds"] / cs["mult_adds"]},
           "top1": {"server->server": ident.rows[0].accuracy[1], "phone->phone": ident.rows[1].accuracy[1],
                    "phone->server": ident.rows[2].accuracy[1]}}
    for r, b in zip(rep.rows, base.rows):
        out[f"{r.far:g}"] = {"server,server": r.old_old.val, "phone,phone": r.new_new.val,
                             "phone->server": r.new_old.val, "phone-base,phone-base": b.new_new.val,
                             "phone-base->server": b.new_old.val, "compatible": r.compatible,
                             "gain_recovered": r.gain_recovered}
    print(f"seed {seed}: " + ", ".join(f"FAR {r.far:g}: server {r.old_old.val:.3f} phone {r.new_new.val:.3f} "
                                       f"phone->server {r.new_old.val:.3f}" for r in rep.rows), flush=True)
    return out


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for far in (f"{f:g}" for f in FARS):
        row: dict = {"far": far}
        for k in ("server,server", "phone-base,phone-base", "phone-base->server", "phone,phone", "phone->server"):
            v = [r[far][k] for r in runs]
            row[f"VAL({k})"], row[f"VAL({k}) std"] = float(np.mean(v)), float(np.std(v))
        gains = [r[far]["gain_recovered"] for r in runs if r[far]["gain_recovered"] is not None]
        row["gain_recovered"] = float(np.mean(gains)) if gains else None
        row["gain_defined_runs"] = f"{len(gains)}/{len(runs)}"
        row["compatible_runs"] = f"{sum(r[far]['compatible'] for r in runs)}/{len(runs)}"
        row["mult_adds_ratio phone/server"] = float(np.mean([r["cost"]["mult_adds_ratio"] for r in runs]))
        row["top1 server->server"] = float(np.mean([r["top1"]["server->server"] for r in runs]))
        row["top1 phone->server"] = float(np.mean([r["top1"]["phone->server"] for r in runs]))
        row["seeds"] = " ".join(str(r["seed"]) for r in runs)
        rows.append(row)
    return rows


def run(quick: bool = True, seeds: list[int] | None = None) -> dict:
    seeds = seeds if seeds is not None else ([0] if quick else [0, 1, 2])
    t0 = time.time()
    runs = [one_seed(s) for s in seeds]
    rows = summarise(runs)
    c = runs[0]["cost"]
    lo = next(r for r in rows if r["far"] == f"{min(FARS):g}")
    gain = "undefined (the phone model is not better than the server's)" if lo["gain_recovered"] is None \
        else f"{lo['gain_recovered']:.2f}"
    summary = (f"phone v2 (MobileFaceNet x0.5, {c['phone']['mult_adds'] / 1e6:.1f}M multiply-adds, "
               f"{c['phone']['params'] / 1e6:.2f}M params) against the server v1 (small CNN, "
               f"{c['server']['mult_adds'] / 1e6:.1f}M, {c['server']['params'] / 1e6:.2f}M): ratio "
               f"{c['mult_adds_ratio']:.2f}; FAR {lo['far']}: VAL(server,server) {lo['VAL(server,server)']:.3f}, "
               f"VAL(phone,phone) {lo['VAL(phone,phone)']:.3f}, VAL(phone->server) {lo['VAL(phone->server)']:.3f} "
               f"(the phone base alone: {lo['VAL(phone-base->server)']:.3f}), compatible {lo['compatible_runs']}, "
               f"gain recovered {gain}; top-1 on the server gallery: phone {lo['top1 phone->server']:.3f} vs "
               f"server {lo['top1 server->server']:.3f} (mean over seeds {lo['seeds']})")
    out = {"benchmark": "mobile", "summary": summary, "rows": rows, "runs": runs, "wall_s": round(time.time() - t0),
           "machine": {"cpus": os.cpu_count()}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, json.dumps(out, indent=2, default=float))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--seeds", type=int, nargs="*")
    args = ap.parse_args()
    print(run(quick=not args.full, seeds=args.seeds)["summary"])
