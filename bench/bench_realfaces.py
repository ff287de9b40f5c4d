"""Real photos you bring: dlib (detect mode) on a folder of raw photos, through harmony's pipeline.

Real face data cannot ship with harmony, so this bench takes your folder. Run::

    python bench/bench_realfaces.py --data PHOTOS                 # PHOTOS/<person>/<photo>.jpg, uncropped
    python bench/bench_realfaces.py --data LFW --lfw-pairs pairs.txt   # the LFW protocol (10 folds)
    HARMONY_REALFACES=PHOTOS python -m bench realfaces

It registers dlib's ResNet in detect mode (HOG detector with up-sampling retries, 5-point chips at
full resolution) in a throwaway registry, runs ``harmony.evaluate`` over the folder and writes
VAL@FAR (exact, over all pairs) or the LFW 10-fold accuracy, the photos skipped with their reasons
and the throughput to ``bench/results/realfaces.json``. Without a folder it records that it was
skipped and why. The same report comes from the CLI::

    harmony registry add-external dlib --adapter dlib --mode detect
    harmony eval --version dlib --data PHOTOS [--lfw-pairs pairs.txt]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from harmony.io import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results" / "realfaces.json"
SHOWN = 20  # skipped photos listed by name (all are counted)


def measure(data: Path, lfw_pairs: Path | None = None) -> dict:
    import harmony
    from harmony.evaluation.datasets import lfw_pairs_set
    from harmony.models.dlib_model import register_dlib

    with tempfile.TemporaryDirectory() as tmp:
        reg = harmony.Registry.open(Path(tmp) / "registry")
        register_dlib(reg, "dlib", mode="detect")
        eval_set = lfw_pairs_set(lfw_pairs, data) if lfw_pairs else harmony.folder_set(data)
        t = time.perf_counter()
        res = harmony.evaluate(reg, "dlib", data=eval_set, fars=(1e-2, 1e-3), allow_missing=True, record=False)
        wall = time.perf_counter() - t
    v = res.versions[0]
    rows = [{"far": r.far, "val": r.val, "threshold": r.threshold, "n_same": r.n_same, "n_diff": r.n_diff,
             "zero_false_accepts": r.zero_false_accepts} for r in v.val]
    skipped = [*res.unreadable, *res.missing]
    out = {"data": str(Path(data).absolute()), "kind": res.kind, "photos": res.n_images,
           "identities": res.n_identities, "pairs": res.n_pairs, "skipped": len(skipped),
           "skipped_shown": skipped[:SHOWN], "rows": rows, "wall_s": wall,
           "photos_per_s": res.n_images / wall if wall > 0 else None}
    if v.lfw is not None:
        out["lfw"] = v.lfw.as_dict()
    vals = ", ".join(f"VAL@{r['far']:g} = {r['val']:.3f}" for r in rows)
    lfw = f"; LFW 10-fold accuracy {v.lfw.as_dict().get('mean')}" if v.lfw is not None else ""
    out["summary"] = (f"dlib detect: {res.n_images} photos embedded, {len(skipped)} skipped: {vals}{lfw}; "
                      f"{out['photos_per_s']:.1f} photos/s end to end")
    return out


def run(quick: bool = True, data: str | None = None, lfw_pairs: str | None = None) -> dict:
    data = data or os.environ.get("HARMONY_REALFACES")
    lfw_pairs = lfw_pairs or os.environ.get("HARMONY_REALFACES_PAIRS")
    if not data:
        out = {"rows": [], "summary": "skipped: pass --data PHOTOS (or set HARMONY_REALFACES); real photos "
                                      "cannot ship with harmony"}
    else:
        out = {"benchmark": "realfaces", **measure(Path(data), Path(lfw_pairs) if lfw_pairs else None)}
    atomic_write_text(RESULTS, json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="a folder of raw photos, PHOTOS/<person>/<photo>")
    ap.add_argument("--lfw-pairs", help="LFW's pairs.txt (then --data is the LFW image root)")
    a = ap.parse_args()
    print(run(data=a.data, lfw_pairs=a.lfw_pairs)["summary"])
