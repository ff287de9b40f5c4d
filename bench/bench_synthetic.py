"""Synthetic face generator throughput (images/s) against the 2,000 images/s target at 64 px.

Also reports 160 px (FaceNet's input size), and at each size the renderer that paints every face
part over the whole canvas (``windowed=False``, the reference the windowed one must beat; both
give the same pixels, checked here too). Run: ``python bench/bench_synthetic.py [--full]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from harmony.io import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results" / "synthetic.json"
TARGET = 2000.0  # images/s at 64 px on 2 CPU cores (foundation issue)


def run(quick: bool = True) -> dict:
    import numpy as np
    import torch

    from harmony.data.synthetic import SynthConfig, render

    rows = []
    for size, n in [(64, 4000 if quick else 20000), (160, 1000 if quick else 4000)]:
        cfg = SynthConfig(image_size=size)
        render(np.arange(64), np.zeros(64, int), "train", cfg)  # warm-up
        ids = np.repeat(np.arange(n // 8), 8)
        ims = np.tile(np.arange(8), n // 8)
        best = {True: float("inf"), False: float("inf")}
        for _ in range(3):  # interleaved, best of 3 each
            for windowed in (True, False):
                t0 = time.perf_counter()
                imgs = render(ids, ims, "train", cfg, windowed=windowed)
                best[windowed] = min(best[windowed], time.perf_counter() - t0)
                if windowed:
                    first = imgs
                elif not np.array_equal(first, imgs):
                    raise SystemExit(f"windowed and whole-canvas renders differ at {size} px")
        rate = n / best[True]
        rows.append({"image_size": size, "images": n, "seconds": best[True], "images_per_s": rate,
                     "reference": "target 2,000 images/s at 64 px" if size == 64 else "-",
                     "ratio_vs_target": rate / TARGET if size == 64 else None,
                     "whole_canvas_images_per_s": n / best[False], "speedup_vs_whole_canvas": best[False] / best[True]})
    out = {"benchmark": "synthetic", "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                                   "platform": platform.platform()}, "rows": rows}
    atomic_write_text(RESULTS, json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true")
    res = run(quick=not ap.parse_args().full)
    for r in res["rows"]:
        print(f"{r['image_size']:>4} px: {r['images_per_s']:8.0f} images/s", f"(x{r['ratio_vs_target']:.2f} of target)"
              if r["ratio_vs_target"] else "")
