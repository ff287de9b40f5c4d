"""Alignment benchmark: photos/s of ``align_folder`` (1 and 2 workers) against dlib's own detector
+ ``get_face_chip`` loop written plainly (the reference), on the same photos.

The photos are made here from the committed public-domain portrait (tests/data/photos): phone-like
1600 x 1200 JPEGs (quality 90), the portrait scaled to 700-1100 px, shifted, mirrored and tilted by
up to 10 degrees on a varied background, ``RAW/person<i>/<j>.jpg``. Every method reads the JPEGs
from disk, finds the largest face, aligns a 150 px dlib chip and writes it as PNG. The reference
runs dlib's detector at up-sampling 1 (dlib's example and ``face_recognition``'s default) and at 0
(harmony's first level: it stops there when a face clears ``min_score``); ratios are against the
up-sampling-1 loop. The 2-worker time includes starting the pool (spawn, dlib loaded per worker).

Run: python -m bench align [--full]; writes bench/results/align.json.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "tests" / "data" / "photos" / "astronaut.jpg"
RESULTS = Path(__file__).parent / "results" / "align.json"
SIZE = 150


def make_photos(raw: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` 1600 x 1200 JPEG variants of the portrait under ``raw/person<i>/``."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    with Image.open(PORTRAIT) as im:
        portrait = im.convert("RGB")
    paths = []
    for i in range(n):
        side = int(rng.integers(700, 1100))
        face = portrait.resize((side, side), Image.BICUBIC)
        if rng.random() < 0.5:
            face = face.transpose(Image.FLIP_LEFT_RIGHT)
        face = face.rotate(float(rng.uniform(-10, 10)), Image.BICUBIC, fillcolor=tuple(int(v) for v in rng.integers(0, 255, 3)))
        noise = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
        canvas = Image.fromarray(noise).resize((1600, 1200), Image.BICUBIC).filter(ImageFilter.GaussianBlur(8))
        canvas.paste(face, (int(rng.integers(0, 1600 - side)), int(rng.integers(0, 1200 - side))))
        path = raw / f"person{i % 8}" / f"{i:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(path, quality=90)
        paths.append(path)
    return paths


def dlib_reference(photos: list[Path], out: Path, upsample: int) -> int:
    """dlib's own loop: load, detect, the largest face's 5 landmarks, chip, save. Crops written."""
    import dlib
    from PIL import Image

    from harmony.registry.manifests import dlib_model_files

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_files()["shape_predictor"]))
    written = 0
    for path in photos:
        img = dlib.load_rgb_image(str(path))
        dets = detector(img, upsample)
        if not dets:
            continue
        best = max(dets, key=lambda r: r.area())
        chip = dlib.get_face_chip(img, predictor(img, best), size=SIZE, padding=0.25)
        target = out / path.parent.name / f"{path.stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(chip).save(target)
        written += 1
    return written


def _timed(fn) -> tuple[float, int]:
    t = time.perf_counter()
    n = fn()
    return time.perf_counter() - t, n


def run(quick: bool = True) -> dict:
    import dlib  # noqa: F401 - the benchmark needs the dlib extra

    from harmony.align.detect import _models
    from harmony.align.folder import align_folder
    from harmony.align.spec import AlignSpec

    n = 40 if quick else 200
    spec = AlignSpec(style="dlib-chip", size=SIZE)
    with tempfile.TemporaryDirectory(prefix="bench-align-") as tmp:
        tmp = Path(tmp)
        photos = make_photos(tmp / "raw", n)
        _models()  # load dlib once, like the reference's setup (the pool's workers load their own)
        rows = []
        ref_s, ref_n = _timed(lambda: dlib_reference(photos, tmp / "ref1", 1))
        rows.append({"method": "dlib loop (reference), upsample 1", "workers": 1, "photos": n, "aligned": ref_n,
                     "seconds": round(ref_s, 2), "photos_per_s": round(n / ref_s, 2), "ratio_vs_reference": 1.0})
        s, k = _timed(lambda: dlib_reference(photos, tmp / "ref0", 0))
        rows.append({"method": "dlib loop, upsample 0", "workers": 1, "photos": n, "aligned": k,
                     "seconds": round(s, 2), "photos_per_s": round(n / s, 2), "ratio_vs_reference": round(ref_s / s, 2)})
        for workers in (1, 2):
            out = tmp / f"ours{workers}"
            s, k = _timed(lambda: align_folder(tmp / "raw", out, spec, workers=workers).counts["aligned"])
            rows.append({"method": "harmony align_folder", "workers": workers, "photos": n, "aligned": k,
                         "seconds": round(s, 2), "photos_per_s": round(n / s, 2),
                         "ratio_vs_reference": round(ref_s / s, 2)})
    ours1, ours2 = rows[2], rows[3]
    load = os.getloadavg()[0]  # a shared machine: 2 workers only gain when the cores are idle
    summary = (f"{n} photos of 1600 x 1200 (the portrait, varied), 150 px dlib chips, {os.cpu_count()} cores: "
               f"harmony aligns {ours1['photos_per_s']} photos/s on 1 worker and {ours2['photos_per_s']} on 2, "
               f"{ours1['ratio_vs_reference']}x and {ours2['ratio_vs_reference']}x dlib's plain loop at up-sampling 1 "
               f"({rows[0]['photos_per_s']} photos/s); every method aligned "
               f"{'the same' if len({r['aligned'] for r in rows}) == 1 else 'a different'} number of photos; "
               f"load average {load:.1f} at the end.")
    return {"summary": summary, "rows": rows, "load_avg_1m": round(load, 2)}


if __name__ == "__main__":
    import sys

    res = run(quick="--full" not in sys.argv)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
