"""Gallery migration benchmark: backfill throughput with a real harmony model, and the harmonic
advantage (how soon queries run on the new version) against an incompatible target and against
the naive "re-embed everything, then rebuild the index" migration.

Setup: synthetic faces (64 px PNG files, ROOT/<identity>/<image>) and three registered versions of
harmony's small CNN (widths 16-32-64-64, 128-D, the CPU backbone of the recipes), untrained: the
benchmark times the operational path, for which trained and untrained weights cost the same. The
embedding layer is centred on the mean feature of a few train-split renders so vectors spread over
the sphere. The versions:

- v1, the gallery's version (seed 1);
- v2c, v1's weights registered again as a new version: a stand-in for a harmonic upgrade, whose
  compatibility is measured (VAL(v2c->v1) = VAL(v1,v1), so it passes the criterion);
- v2i, an independently initialised network (seed 2), measured incompatible.

Verdicts are measured on held-out synthetic identities at the gallery's operating FAR (0.1: the
FAR where untrained networks have a non-zero VAL, so the criterion separates the two) and recorded
in the registry, then `harmony.migration` does what the CLI does:

- compatible: plan + register the migration, then the first v2 query (mixed search) returns; the
  time until then is the time until queries run on v2. The backfill then runs to completion.
- incompatible: the full backfill, the swap, then the first v2 query.
- naive reference: read + embed every source with v2, build a fresh index, write it; no
  checkpoints, no resume, queries wait for all of it.

Throughput side by side (``throughput``): on the same gallery and machine, interleaved, REPEATS
times each, medians compared: the naive reference, harmony's backfill as it runs by default
(reader workers decoding ahead of the encoder, commits on a background thread) and the same
backfill reading in the main thread (``--workers 0``). The ratio is naive time / backfill time
(>= 1: the checkpointed backfill is at least as fast as re-embedding without any checkpoint).

Run: python bench/bench_migration.py [--full]; writes bench/results/migration.json.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harmony.io import atomic_write_text

RESULTS = Path(__file__).parent / "results" / "migration.json"
SIZE = 64
DIM = 128
WIDTHS = [16, 32, 64, 64]
FAR = 0.1
BATCH = 256
REPEATS = 3


def _model(seed: int):
    import torch

    from harmony.data.synthetic import SynthConfig, render_set
    from harmony.models.embedder import Embedder, EmbedderSpec

    torch.manual_seed(seed)
    m = Embedder(EmbedderSpec(dim=DIM, image_size=SIZE, backbone_args={"widths": WIDTHS})).eval()
    calib = render_set(32, 4, "train", SynthConfig(image_size=SIZE))[0]
    with torch.no_grad():
        f = m.features(torch.from_numpy(calib).permute(0, 3, 1, 2))
        m.head.weight.div_(f.std(0)[None, :] + 1e-6)
        m.head.bias.copy_(-m.head.weight @ f.mean(0))
    return m


def _register(reg, name: str, model, tmp: Path) -> None:
    import torch

    path = tmp / f"{name}.pt"
    torch.save(model.checkpoint(), path)
    reg.add_version(name, kind="base", artifact=path, backbone="small_cnn", dim=DIM,
                    meta={"spec": model.spec.as_dict(), "note": "untrained, benchmark only"})


def _write_faces(root: Path, n_identities: int, per_identity: int) -> int:
    from harmony.data.synthetic_folder import write_synthetic_faces

    write_synthetic_faces(root, n_identities, per_identity, size=SIZE)
    return n_identities * per_identity


def _measure_verdicts(reg) -> dict:
    """Measure v2c and v2i against v1 on held-out synthetic identities and record the verdicts."""
    from harmony.data.synthetic import SynthConfig, render_set
    from harmony.metrics import compatibility_report
    from harmony.models.loading import load_encoder

    images, labels = render_set(100, 6, "val", SynthConfig(image_size=SIZE, seed=7))
    emb = {v: load_encoder(reg, v).encode(images) for v in ("v1", "v2c", "v2i")}
    out = {}
    for new in ("v2c", "v2i"):
        rep = compatibility_report(emb["v1"], emb[new], labels, (FAR,), old_name="v1", new_name=new)
        r = rep.rows[0]
        reg.record_compatibility(new, "v1", "synthetic:val:seed7:100x6:64px", FAR,
                                 {"old_old": r.old_old.val, "new_new": r.new_new.val, "new_old": r.new_old.val,
                                  "old_new": r.old_new.val}, r.compatible)
        out[new] = {"val_v1_v1": r.old_old.val, "val_new_new": r.new_new.val, "val_new_v1": r.new_old.val,
                    "compatible": r.compatible}
    return out


def _copy_registry(src: Path, dst: Path) -> Path:
    return Path(shutil.copytree(src, dst))


def _first_query(reg, gallery: str, query: Path) -> tuple[float, str, str]:
    from harmony.migration.search import search_gallery

    t = time.perf_counter()
    r = search_gallery(reg, gallery, query, k=5)
    return time.perf_counter() - t, r.query_version, r.mode


def _naive(reg, sources: list[str], tmp: Path) -> float:
    """Read + embed every source with v2i, build a fresh flat index, write it: no checkpoint."""
    from harmony.gallery import index as fx
    from harmony.models.pipeline import FileEmbedder

    t0 = time.perf_counter()
    vecs, ok = FileEmbedder(reg, "v2i", batch_size=BATCH)(sources)
    index = fx.make_index(DIM, "flat")
    fx.add(index, np.flatnonzero(ok).astype(np.int64), vecs)
    fx.save_index(index, tmp / "naive.faiss")
    return time.perf_counter() - t0


def _backfill(reg, tmp: Path, name: str, workers: int | None) -> float:
    """One full backfill of a fresh copy of the gallery to v2i (the library call the CLI makes)."""
    from harmony.gallery.catalog import open_gallery
    from harmony.migration.backfill import run_backfill
    from harmony.models.pipeline import FileEmbedder
    from harmony.registry import Registry

    root = _copy_registry(reg.root, tmp / f"registry-{name}")
    try:
        rr = Registry.open(root)
        _, store = open_gallery(rr, "prod")
        r = run_backfill(store, "v2i", FileEmbedder(rr, "v2i", batch_size=BATCH), batch_size=BATCH, workers=workers)
        assert r.complete and r.n_embedded == len(store.items())
        return r.total_s
    finally:
        shutil.rmtree(root, ignore_errors=True)


def throughput(reg, tmp: Path, n: int, repeats: int = REPEATS) -> dict:
    """Naive vs backfill (default workers) vs backfill --workers 0, interleaved, ``repeats`` each."""
    import statistics

    from harmony.gallery.catalog import open_gallery
    from harmony.migration.backfill import default_workers

    _, store = open_gallery(reg, "prod")
    sources = [str(s) for s in store.items().sources]
    runs: dict[str, list[float]] = {"naive": [], "backfill": [], "backfill_workers_0": []}
    for r in range(repeats):
        runs["naive"].append(_naive(reg, sources, tmp))
        runs["backfill"].append(_backfill(reg, tmp, f"b{r}", None))
        runs["backfill_workers_0"].append(_backfill(reg, tmp, f"s{r}", 0))
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"repeats": repeats, "workers": default_workers(), "seconds": runs, "median_s": med,
            "items_per_s": {k: n / v for k, v in med.items()},
            "speed_vs_naive": {k: med["naive"] / v for k, v in med.items() if k != "naive"}}


def bench(n_identities: int, per_identity: int) -> dict:
    from harmony.gallery import index as fx
    from harmony.models.pipeline import FileEmbedder
    from harmony.gallery.catalog import build_gallery, open_gallery
    from harmony.migration.run import run_migration
    from harmony.migration.plan import plan_migration
    from harmony.registry import Registry

    tmp = Path(tempfile.mkdtemp(prefix="bench-migration-"))
    try:
        faces = tmp / "faces"
        t = time.perf_counter()
        n = _write_faces(faces, n_identities, per_identity)
        render_s = time.perf_counter() - t
        query = sorted(next(faces.iterdir()).iterdir())[0]  # the first image of one identity
        reg = Registry.open(tmp / "registry")
        v1 = _model(1)
        _register(reg, "v1", v1, tmp)
        _register(reg, "v2c", v1, tmp)
        _register(reg, "v2i", _model(2), tmp)
        verdicts = _measure_verdicts(reg)
        build = build_gallery(reg, "prod", "v1", faces, far=FAR, batch_size=BATCH)
        roots = {k: _copy_registry(reg.root, tmp / f"registry-{k}") for k in ("compatible", "incompatible")}

        # compatible target: queries on v2c as soon as the migration is registered
        rc = Registry.open(roots["compatible"])
        t0 = time.perf_counter()
        plan = plan_migration(rc, "prod", "v2c")
        run_migration(rc, plan, batch_size=BATCH, stop_after=0)
        q_s, q_version, q_mode = _first_query(rc, "prod", query)
        compat_to_v2 = time.perf_counter() - t0
        t1 = time.perf_counter()
        out = run_migration(rc, plan_migration(rc, "prod", "v2c"), batch_size=BATCH, swap=True)
        compat_rest = time.perf_counter() - t1
        b = out.backfill
        c = out.migration.counts

        # incompatible target: queries wait for the full backfill and the swap
        ri = Registry.open(roots["incompatible"])
        t0 = time.perf_counter()
        out_i = run_migration(ri, plan_migration(ri, "prod", "v2i"), batch_size=BATCH, swap=True)
        qi_s, qi_version, qi_mode = _first_query(ri, "prod", query)
        incompat_to_v2 = time.perf_counter() - t0

        # naive reference: re-embed every source with v2, then build and write a fresh index
        _, store = open_gallery(reg, "prod")
        sources = [str(s) for s in store.items().sources]
        t0 = time.perf_counter()
        emb = FileEmbedder(reg, "v2i", batch_size=BATCH)
        vecs, ok = emb(sources)
        t_embed = time.perf_counter() - t0
        index = fx.make_index(DIM, "flat")
        fx.add(index, np.flatnonzero(ok).astype(np.int64), vecs)
        fx.save_index(index, tmp / "naive.faiss")
        naive_s = time.perf_counter() - t0
        naive_q = time.perf_counter()
        fx.search(index, vecs[:1], 5)
        naive_s += time.perf_counter() - naive_q
        tp = throughput(reg, tmp, n)
        result = {
            "throughput": tp,
            "n_items": n, "n_identities": n_identities, "image_size": SIZE, "dim": DIM, "widths": WIDTHS,
            "batch_size": BATCH, "gallery_far": FAR, "render_s": render_s, "verdicts": verdicts,
            "build": {"seconds": build.total_s, "embed_s": build.embed_s, "index_s": build.index_s,
                      "items_per_s": n / build.total_s},
            "backfill": {"seconds": b.total_s, "items_per_s": b.items_per_s, "embed_share": b.embed_share,
                         "read_share": c["read_s"] / b.total_s, "encode_share": c["encode_s"] / b.total_s,
                         "index_share": b.index_s / b.total_s, "write_share": b.write_s / b.total_s,
                         "batches": b.batches, "rest_with_report_and_swap_s": compat_rest},
            "compatible": {"time_to_v2_queries_s": compat_to_v2, "first_query_s": q_s, "query_version": q_version,
                           "mode": q_mode},
            "incompatible": {"time_to_v2_queries_s": incompat_to_v2, "first_query_s": qi_s,
                             "query_version": qi_version, "mode": qi_mode,
                             "backfill_s": out_i.backfill.total_s, "items_per_s": out_i.backfill.items_per_s},
            "naive": {"seconds": naive_s, "embed_s": t_embed, "items_per_s": n / naive_s},
        }
        result["ratios"] = {
            "incompatible_over_compatible_time_to_v2": incompat_to_v2 / compat_to_v2,
            "naive_over_compatible_time_to_v2": naive_s / compat_to_v2,
            "backfill_over_naive_time": b.total_s / naive_s,
            "backfill_speed_vs_naive_median": tp["speed_vs_naive"]["backfill"],
            "backfill_workers_0_speed_vs_naive_median": tp["speed_vs_naive"]["backfill_workers_0"],
        }
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(quick: bool = True) -> dict:
    import os

    import torch

    n_ids, per = (125, 8) if quick else (1250, 8)
    load = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    r = bench(n_ids, per)
    result = {"benchmark": "migration", "quick": quick, "cpu_count": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
              "load_avg_1min_before": load, "load_avg_1min_after": os.getloadavg()[0], **r}
    result["rows"] = _rows(r)
    result["summary"] = _summary(r)
    atomic_write_text(RESULTS, json.dumps(result, indent=1) + "\n")
    _print(result)
    return result


def _rows(r: dict) -> list[dict]:
    b, n, tp = r["backfill"], r["n_items"], r["throughput"]
    side = [{"what": f"throughput, median of {tp['repeats']}: {k}", "items": n, "seconds": tp["median_s"][k],
             "items_per_s": tp["items_per_s"][k], "speed_vs_naive": tp["speed_vs_naive"].get(k, 1.0)}
            for k in ("naive", "backfill", "backfill_workers_0")]
    return side + [
        {"what": "build v1 gallery (embed + index)", "items": n, "seconds": r["build"]["seconds"],
         "items_per_s": r["build"]["items_per_s"]},
        {"what": "backfill to v2c (harmony, checkpointed)", "items": n, "seconds": b["seconds"],
         "items_per_s": b["items_per_s"], "read_share": b["read_share"], "encode_share": b["encode_share"],
         "index_share": b["index_share"], "write_share": b["write_share"]},
        {"what": "naive re-embed all + rebuild (reference)", "items": n, "seconds": r["naive"]["seconds"],
         "items_per_s": r["naive"]["items_per_s"]},
        {"what": "time until queries run on v2: compatible (mixed at once)", "items": n,
         "seconds": r["compatible"]["time_to_v2_queries_s"]},
        {"what": "time until queries run on v2: incompatible (full backfill + swap)", "items": n,
         "seconds": r["incompatible"]["time_to_v2_queries_s"]},
        {"what": "time until queries run on v2: naive (reference)", "items": n, "seconds": r["naive"]["seconds"]},
    ]


def _summary(r: dict) -> str:
    b, ra, tp = r["backfill"], r["ratios"], r["throughput"]
    sp = tp["speed_vs_naive"]
    return (f"Side by side (median of {tp['repeats']}, same gallery): backfill {tp['items_per_s']['backfill']:,.0f} "
            f"items/s with {tp['workers']} reader worker(s) = {sp['backfill']:.2f}x the naive re-embed-and-rebuild "
            f"({tp['items_per_s']['naive']:,.0f} items/s); reading in the main thread {sp['backfill_workers_0']:.2f}x. "
            f"{r['n_items']:,} synthetic faces, small CNN 128-D at {r['image_size']} px (untrained weights): backfill "
            f"{b['items_per_s']:,.0f} items/s (read {b['read_share']:.0%}, encode {b['encode_share']:.0%}, index "
            f"{b['index_share']:.0%}, checkpoint writes {b['write_share']:.0%}), {ra['backfill_over_naive_time']:.2f}x "
            f"the naive re-embed-and-rebuild time. Queries on v2: compatible target after "
            f"{r['compatible']['time_to_v2_queries_s']:.2f} s (mixed search at once), incompatible after "
            f"{r['incompatible']['time_to_v2_queries_s']:.1f} s (full backfill + swap): "
            f"{ra['incompatible_over_compatible_time_to_v2']:.0f}x sooner; naive reference "
            f"{r['naive']['seconds']:.1f} s ({ra['naive_over_compatible_time_to_v2']:.0f}x). Verdicts measured at "
            f"FAR {r['gallery_far']:g}: v2c VAL(v2c->v1) {r['verdicts']['v2c']['val_new_v1']:.3f} vs VAL(v1,v1) "
            f"{r['verdicts']['v2c']['val_v1_v1']:.3f}, v2i {r['verdicts']['v2i']['val_new_v1']:.3f}.")


def _print(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    t = Table(title=f"gallery migration, {result['n_items']:,} items ({result['torch_threads']} torch threads, "
                    f"{result['cpu_count']} CPUs)")
    for col in ("what", "seconds", "items/s", "read", "encode", "index", "write"):
        t.add_column(col, justify="left" if col == "what" else "right")
    for row in result["rows"]:
        share = [f"{row[k]:.0%}" if k in row else "" for k in ("read_share", "encode_share", "index_share",
                                                                  "write_share")]
        t.add_row(row["what"], f"{row['seconds']:.2f}", f"{row['items_per_s']:,.0f}" if "items_per_s" in row else "",
                  *share)
    console.print(t)
    console.print(result["summary"])


if __name__ == "__main__":
    run(quick="--full" not in sys.argv)
