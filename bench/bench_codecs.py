"""Capacity plan: FAISS add and search throughput and bytes per face, per codec and shard count.

For every codec of harmony.gallery.index (flat, sq8, ivf, ivf-sq8) at n 128-D clustered unit
vectors: add throughput (training on the seeded sample included, the sample size stated), batch
and one-query-at-a-time search QPS, recall@10 against the exact flat index (the reference, in
the same run: ratios are codec / flat), bytes per face in the codes, on disk and resident after a
load (measured in a fresh process), and the same searches over CPU shards (index.shard_index,
flat and ivf-sq8): their QPS as a ratio to the unsharded index, measured interleaved so both see
the same load, and whether their ids equal it.

Run: python bench/bench_codecs.py [--full]; writes bench/results/codecs.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harmony.gallery import index as fx
from harmony.gallery.synthetic import clustered_unit_vectors
from harmony.io import atomic_write_text

DIM = 128
K = 10
RESULTS = Path(__file__).parent / "results" / "codecs.json"


SHARD_CODECS = ("flat", "ivf-sq8")
SHARD_NQ, SHARD_SINGLE, SHARD_ROUNDS = 200, 50, 5


def shard_ratio(index, q: np.ndarray, n_shards: int) -> dict:
    """QPS of a shard view over the unsharded index, measured interleaved (one, view, one, view...)
    for SHARD_ROUNDS rounds so both see the same load on shared cores: the median ratio per round,
    and the ratios' range."""
    view = fx.shard_index(index, n_shards)
    batch, single, same = [], [], []
    for _ in range(SHARD_ROUNDS):
        t = {}
        for name, idx in (("one", index), ("view", view)):
            t0 = time.perf_counter()
            _, I = fx.search(idx, q, K)
            t[name] = time.perf_counter() - t0
            t0 = time.perf_counter()
            for i in range(SHARD_SINGLE):
                fx.search(idx, q[i], K)
            t[name + "_1"] = time.perf_counter() - t0
            if name == "one":
                I_one = I
        same.append(float(np.mean(I == I_one)))
        batch.append(t["one"] / t["view"])
        single.append(t["one_1"] / t["view_1"])
    return {"qps_ratio": float(np.median(batch)), "qps_ratio_range": [min(batch), max(batch)],
            "qps_single_ratio": float(np.median(single)), "qps_single_ratio_range": [min(single), max(single)],
            "same_ids_share": min(same), "rounds": SHARD_ROUNDS, "nq": int(q.shape[0])}


def _bench_search():
    sys.path.insert(0, str(Path(__file__).parent))
    import bench_search  # the RSS probe, the timer and the one-thread context live there

    return bench_search


def bench_codecs(n: int, nq: int = 1000, shard_counts: tuple[int, ...] = (2, 4), n_single: int = 100,
                 seed: int = 0) -> dict:
    bs = _bench_search()
    x, _, centres = clustered_unit_vectors(n, DIM, n_clusters=n // 10, seed=seed)
    q, _, _ = clustered_unit_vectors(nq, DIM, centres=centres, seed=seed + 1)
    ids = np.arange(n, dtype=np.int64)
    out: dict = {"n": n, "nq": nq, "dim": DIM, "k": K, "codecs": {}}
    I_ref = None
    with tempfile.TemporaryDirectory() as tmp:
        for codec in fx.CODECS:
            index = fx.make_index(DIM, codec, n=n)
            t = time.perf_counter()
            sample = fx.add(index, ids, x)
            add_s = time.perf_counter() - t
            path = Path(tmp) / f"{codec}.faiss"
            disk = fx.save_index(index, path)
            row = {"add_per_s": n / add_s, "add_s": add_s, "train_sample": sample or None,
                   "code_bytes": int(index.sa_code_size()), "bytes_per_face_disk": disk / n,
                   "bytes_per_face_ram": bs.resident_bytes(path) / n}
            t_s, (_, I) = bs._timed(lambda idx=index: fx.search(idx, q, K))
            with bs.one_thread():
                t_1, _ = bs._timed(lambda idx=index: [fx.search(idx, q[i], K) for i in range(n_single)], 0.0)
            if I_ref is None:
                I_ref = I  # flat: exact
            row.update(qps=nq / t_s, qps_single=n_single / t_1, recall_at_10=bs.recall(I, I_ref))
            row["shards"] = {s: shard_ratio(index, q[:SHARD_NQ], s) for s in shard_counts} \
                if codec in SHARD_CODECS else {}
            out["codecs"][codec] = row
    flat = out["codecs"]["flat"]
    for row in out["codecs"].values():
        row["qps_vs_flat"] = row["qps"] / flat["qps"]
        row["bytes_vs_flat"] = row["bytes_per_face_ram"] / flat["bytes_per_face_ram"]
    return out


def run(quick: bool = True) -> dict:
    import faiss

    sizes = [100_000] if quick else [100_000, 1_000_000]
    result = {"benchmark": "codecs", "quick": quick, "faiss": faiss.__version__,
              "omp_threads": faiss.omp_get_max_threads(), "cpu_count": os.cpu_count(), "gpu": fx.gpu_available(),
              "machine": f"{os.cpu_count()} CPU cores (shared), faiss {faiss.__version__}, no GPU"
              if not fx.gpu_available() else f"{os.cpu_count()} CPU cores, {faiss.get_num_gpus()} GPU(s)",
              "load_avg_before": os.getloadavg()[0], "sizes": [bench_codecs(n) for n in sizes]}
    result["load_avg_after"] = os.getloadavg()[0]  # other jobs on the shared cores: read the QPS with this
    result["rows"] = _rows(result)
    result["summary"] = _summary(result)
    atomic_write_text(RESULTS, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["rows"], indent=1))
    print(result["summary"])
    return result


def _rows(result: dict) -> list[dict]:
    rows = []
    for s in result["sizes"]:
        for codec, r in s["codecs"].items():
            rows.append({"n": s["n"], "codec": codec, "shards": 1, "add_per_s": r["add_per_s"],
                         "train_sample": r["train_sample"], "qps_batch": r["qps"], "qps_1by1": r["qps_single"],
                         "recall_at_10": r["recall_at_10"], "code_bytes": r["code_bytes"],
                         "bytes_per_face_disk": r["bytes_per_face_disk"], "bytes_per_face_ram": r["bytes_per_face_ram"],
                         "qps_vs_flat": r["qps_vs_flat"]})
            for n_shards, v in r["shards"].items():
                rows.append({"n": s["n"], "codec": codec, "shards": n_shards, "qps_vs_unsharded": v["qps_ratio"],
                             "qps_1by1_vs_unsharded": v["qps_single_ratio"],
                             "ratio_range": f"{v['qps_ratio_range'][0]:.2f}-{v['qps_ratio_range'][1]:.2f}",
                             "same_ids_share": v["same_ids_share"]})
    return rows


def _summary(result: dict) -> str:
    s = result["sizes"][-1]
    c = s["codecs"]
    parts = [f"{k} {v['bytes_per_face_ram']:.0f} B/face, add {v['add_per_s']:,.0f}/s, {v['qps']:,.0f} QPS "
             f"(R@10 {v['recall_at_10']:.3f})" for k, v in c.items()]
    shard_txt = "; ".join(
        f"{codec} {k} shards {v['qps_ratio']:.2f}x batch / {v['qps_single_ratio']:.2f}x 1-by-1 QPS "
        f"(median of {v['rounds']} interleaved rounds), ids equal {v['same_ids_share']:.3f}"
        for codec in SHARD_CODECS for k, v in c[codec]["shards"].items())
    return (f"{s['n']:,} x 128-D on {result['machine']} (load average {result['load_avg_before']:.1f}): "
            + "; ".join(parts) + f". CPU shards vs one index: {shard_txt}.")


if __name__ == "__main__":
    run(quick="--full" not in sys.argv)
