"""Distributed backfill capacity: items/s of one gallery backfilled by 1 process and by 2 processes
(``harmony migrate gallery --devices 2``: fixed shards, one Lightning rank each, merged at the end).

Same setup as bench_migration (synthetic 64 px faces as PNG files, harmony's small CNN, untrained,
128-D): a v1 gallery, backfilled to an independent v2 on fresh copies, interleaved, REPEATS times
each, medians. The 1-process figure is the default one-process backfill (reader workers, background
commits); the 2-process figure includes starting the ranks (a forkserver importing torch and
Lightning) and the merge, as a user pays them. On a machine with N idle cores or GPUs the ranks
split the encoding; on 2 shared CPU cores the two ranks contend with each other (say so).

Run: python bench/bench_backfill_scale.py [--full]; writes bench/results/backfill_scale.json.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harmony.io import atomic_write_text

sys.path.insert(0, str(Path(__file__).parent))

from bench_migration import BATCH, _copy_registry, _model, _register, _write_faces  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "backfill_scale.json"
REPEATS = 3


def _one(reg_root: Path, tmp: Path, name: str, processes: int) -> tuple[float, int]:
    from harmony.gallery.catalog import open_gallery
    from harmony.migration.backfill import run_backfill
    from harmony.migration.distributed import Launch
    from harmony.models.pipeline import FileEmbedder
    from harmony.registry import Registry

    root = _copy_registry(reg_root, tmp / f"registry-{name}")
    try:
        rr = Registry.open(root)
        _, store = open_gallery(rr, "prod")
        t = time.perf_counter()
        r = run_backfill(store, "v2", FileEmbedder(rr, "v2", batch_size=BATCH), batch_size=BATCH,
                         launch=Launch(processes, 1, "cpu") if processes > 1 else None)
        s = time.perf_counter() - t
        assert r.complete and r.n_embedded == len(store.items())
        return s, r.n_embedded
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench(n_identities: int, per_identity: int, repeats: int = REPEATS) -> dict:
    from harmony.gallery.catalog import build_gallery
    from harmony.registry import Registry

    tmp = Path(tempfile.mkdtemp(prefix="bench-backfill-scale-"))
    try:
        faces = tmp / "faces"
        n = _write_faces(faces, n_identities, per_identity)
        reg = Registry.open(tmp / "registry")
        _register(reg, "v1", _model(1), tmp)
        _register(reg, "v2", _model(2), tmp)
        build_gallery(reg, "prod", "v1", faces, batch_size=BATCH)
        seconds: dict[int, list[float]] = {1: [], 2: []}
        for r in range(repeats):
            for p in (1, 2):
                s, done = _one(reg.root, tmp, f"p{p}-{r}", p)
                assert done == n
                seconds[p].append(s)
        med = {p: statistics.median(v) for p, v in seconds.items()}
        return {"n_items": n, "batch_size": BATCH, "repeats": repeats,
                "seconds": {str(p): v for p, v in seconds.items()},
                "median_s": {str(p): v for p, v in med.items()},
                "items_per_s": {str(p): n / v for p, v in med.items()},
                "speedup_2_over_1": med[1] / med[2]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(quick: bool = True) -> dict:
    import torch

    n_ids, per = (250, 8) if quick else (1250, 8)
    load = os.getloadavg()[0]
    r = bench(n_ids, per)
    result = {"benchmark": "backfill_scale", "quick": quick, "cpu_count": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
              "load_avg_1min_before": load, "load_avg_1min_after": os.getloadavg()[0], **r}
    result["rows"] = [{"what": f"backfill, {p} process(es)", "items": r["n_items"], "seconds": r["median_s"][p],
                       "items_per_s": r["items_per_s"][p]} for p in ("1", "2")]
    result["summary"] = (f"{r['n_items']:,} synthetic faces, small CNN 128-D at 64 px, median of {r['repeats']}: "
                         f"1 process {r['items_per_s']['1']:,.0f} items/s, 2 processes {r['items_per_s']['2']:,.0f} "
                         f"items/s ({r['speedup_2_over_1']:.2f}x), on {os.cpu_count()} CPU(s) "
                         f"(load average {load:.1f} before the run), rank start-up and merge included.")
    atomic_write_text(RESULTS, json.dumps(result, indent=1) + "\n")
    print(result["summary"])
    return result


if __name__ == "__main__":
    run(quick="--full" not in sys.argv)
