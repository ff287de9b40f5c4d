"""VAL@FAR: harmony's exact blocked scan vs sklearn.metrics.roc_curve on the full distance vector.

Data: N structured random embeddings (N/10 identities x 10 images, d=128, Gaussian centre +
1.5 x Gaussian noise, L2-normalised), same seed for both sides. Pairs: all i < j.
Each measurement runs in a fresh subprocess that reports its wall time and its peak RSS growth
(the peak RSS of its own address space, reset after imports, data and a warm-up, minus the RSS
then; see bench/memory.py), so torch's allocations count as well as numpy's. The reference
builds the condensed float32 distance vector block by block (no n x n matrix) and calls
``roc_curve(same, -D, drop_intermediate=False)``; VAL@FAR = max TPR with FPR <= FAR. Both must agree within one
same pair's share (1 / n_same).

Run: ``python bench/bench_val_at_far.py`` (N = 5k, 20k) or ``--full`` (adds 50k).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from harmony.io import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for workers run as scripts
from memory import peak_rss_mb, reset_peak_rss, rss_mb  # noqa: E402

FARS = (1e-3, 1e-2)
RESULTS = Path(__file__).resolve().parent / "results" / "val_at_far.json"
REF_LIMIT_GB = 8.0


def make_embeddings(n: int, d: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n // 10), 10)[:n]
    x = rng.standard_normal((n // 10, d)).astype(np.float32)[labels]
    x += 1.5 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def _baseline_mb() -> float:
    """Reset the peak to what the process holds now (imports, data, warm-up) and return that."""
    reset_peak_rss()
    return rss_mb()


def _worker_ours(n: int, repeats: int) -> dict:
    import torch  # noqa: F401  (loaded before the baseline: its libraries are not the scan's memory)

    from harmony.metrics import val_at_far

    x, lab = make_embeddings(n)
    wx, wl = make_embeddings(2000, seed=1)
    val_at_far(wx, wl, list(FARS))  # warm-up: thread pools, MKL kernels
    base = _baseline_mb()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = val_at_far(x, lab, list(FARS))
        times.append(time.perf_counter() - t0)
    return {"seconds": min(times), "seconds_all": times, "peak_mb": peak_rss_mb() - base, "base_mb": base,
            "val": [r.val for r in res], "threshold": [r.threshold for r in res],
            "n_same": res[0].n_same, "n_diff": res[0].n_diff}


def _worker_reference(n: int) -> dict:
    from sklearn.metrics import roc_curve

    x, lab = make_embeddings(n)
    roc_curve([0, 1, 0, 1], [0.1, 0.4, 0.35, 0.8])  # warm-up imports
    base = _baseline_mb()
    t0 = time.perf_counter()
    n_pairs = n * (n - 1) // 2
    dist = np.empty(n_pairs, dtype=np.float32)
    same = np.empty(n_pairs, dtype=bool)
    pos = 0
    for i0 in range(0, n, 1024):  # condensed vector, row block by row block
        i1 = min(n, i0 + 1024)
        g = x[i0:i1] @ x[i0:].T
        d = np.maximum(np.float32(2) - np.float32(2) * g, np.float32(0))
        s = lab[i0:i1, None] == lab[None, i0:]
        for r in range(i1 - i0):
            row = slice(r + 1, None)
            m = n - (i0 + r) - 1
            dist[pos:pos + m] = d[r, row]
            same[pos:pos + m] = s[r, row]
            pos += m
    t1 = time.perf_counter()
    fpr, tpr, thr = roc_curve(same, -dist, drop_intermediate=False)
    vals = [float(tpr[fpr <= f].max()) for f in FARS]
    t2 = time.perf_counter()
    return {"seconds": t2 - t0, "distance_seconds": t1 - t0, "roc_seconds": t2 - t1,
            "peak_mb": peak_rss_mb() - base, "base_mb": base, "val": vals, "n_same": int(same.sum())}


def _spawn(kind: str, n: int, repeats: int = 3) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--n", str(n), "--repeats", str(repeats)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        return {"error": f"exit {p.returncode}: {p.stderr.strip().splitlines()[-1:] or ''}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024 ** 2
    return float("nan")


def _measure(n: int, ref_bytes_per_pair: float | None) -> dict:
    """Ours and the reference at one size; the reference is skipped when it would not fit."""
    pairs = n * (n - 1) // 2
    ours = _spawn("ours", n, repeats=3 if n <= 20_000 else 1)
    need_gb = None if ref_bytes_per_pair is None else ref_bytes_per_pair * pairs / 1e9
    avail = _available_gb()
    limit = 0.7 * avail if n <= 20_000 else min(REF_LIMIT_GB, 0.7 * avail)  # 5k, 20k: always if it fits
    if need_gb is not None and need_gb > limit:
        ref = {"skipped": f"reference skipped: it would need ~{need_gb:.0f} GB (extrapolated from the previous size; "
                          f"limit {limit:.1f} GB, {avail:.1f} GB available)"}
    else:
        ref = _spawn("reference", n)
    return {"n": n, "pairs": pairs, "ours": ours, "reference": ref}


def _flat(d: dict) -> dict:
    """One flat row per size (bench/run.py renders rows as a markdown table)."""
    o, r = d["ours"], d["reference"]
    row = {"n": d["n"], "pairs": d["pairs"], "ours_s": o.get("seconds"), "ref_s": r.get("seconds"),
           "speedup": None, "ours_peak_mb": o.get("peak_mb"), "ref_peak_mb": r.get("peak_mb"),
           "val_1e-3_ours": (o.get("val") or [None])[0], "val_1e-3_ref": (r.get("val") or [None])[0],
           "val_1e-2_ours": (o.get("val") or [None, None])[1], "val_1e-2_ref": (r.get("val") or [None, None])[1],
           "val_match": None, "note": o.get("error") or r.get("skipped") or r.get("error") or ""}
    if "val" in o and "val" in r:
        row["speedup"] = r["seconds"] / o["seconds"]
        tol = 1.0 / o["n_same"]  # one same pair's share
        row["val_match"] = all(abs(a - b) <= tol for a, b in zip(o["val"], r["val"]))
    return row


def run(quick: bool = True) -> dict:
    """Measure both sides for N = 5k, 20k (and 50k unless quick); write results JSON."""
    import torch

    sizes = [5_000, 20_000] if quick else [5_000, 20_000, 50_000]
    load_before = os.getloadavg()
    details, bytes_per_pair = [], None
    for n in sizes:
        d = _measure(n, bytes_per_pair)
        if "peak_mb" in d["reference"]:
            bytes_per_pair = d["reference"]["peak_mb"] * 2 ** 20 / d["pairs"]
        details.append(d)
    rows = [_flat(d) for d in details]
    load = [load_before[0], os.getloadavg()[0]]
    done = [r for r in rows if r["speedup"] is not None]
    summary = ("; ".join(f"N={r['n']:,}: {r['ours_s']:.2f} s vs {r['ref_s']:.0f} s ({r['speedup']:.0f}x), "
                         f"peak {r['ours_peak_mb']:.0f} MB vs {r['ref_peak_mb']:.0f} MB, same VAL: {r['val_match']}"
                         for r in done)
               + f". {os.cpu_count()} CPUs, load average {load[0]:.1f} -> {load[1]:.1f} (shared machine).")
    out = {"benchmark": "val_at_far", "fars": list(FARS), "quick": quick, "summary": summary, "rows": rows,
           "details": details,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "processor": platform.processor() or platform.machine(),
                       "torch_threads": torch.get_num_threads(), "load_avg_1m_before_after": load},
           "method": "fresh subprocess per measurement; seconds = wall time (ours: best of repeats); "
                     "peak_mb = peak RSS growth over the post-warm-up baseline (VmHWM after clear_refs)"}
    atomic_write_text(RESULTS, json.dumps(out, indent=2) + "\n")
    return out


def print_table(out: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"VAL@FAR {out['fars']}: val_at_far vs sklearn roc_curve")
    for h in ("N", "ours s", "ref s", "speedup", "ours MB", "ref MB", "VAL@1e-3", "same VAL"):
        t.add_column(h, justify="right")
    notes = []
    for r in out["rows"]:
        if r["note"]:
            notes.append(f"N={r['n']:,}: {r['note']}")
        if r["ours_s"] is None:
            continue
        ok = r["speedup"] is not None
        t.add_row(f"{r['n']:,}", f"{r['ours_s']:.2f}", f"{r['ref_s']:.1f}" if ok else "skipped",
                  f"{r['speedup']:.0f}x" if ok else "-", f"{r['ours_peak_mb']:.0f}",
                  f"{r['ref_peak_mb']:.0f}" if ok else "-", f"{r['val_1e-3_ours']:.4f}", str(r["val_match"] or "-"))
    load = out["machine"]["load_avg_1m_before_after"]
    notes.append(f"{out['machine']['cpus']} CPUs, load average {load[0]:.1f} -> {load[1]:.1f}; MB = peak RSS growth")
    t.caption = "\n".join(notes)
    Console().print(t)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also N = 50k (its reference is skipped above 8 GB)")
    ap.add_argument("--worker", choices=["ours", "reference"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker == "ours":
        print(json.dumps(_worker_ours(a.n, a.repeats)))
    elif a.worker == "reference":
        print(json.dumps(_worker_reference(a.n)))
    else:
        print_table(run(quick=not a.full))
