"""Load test of `harmony serve` while a migration backfills, swaps and rolls back.

A synthetic gallery (n items, 128-D, flat) of stand-in versions v1 and v2 (HashEmbedder; v2 drifts
from v1, and the registry holds a passing v2 -> v1 verdict at the gallery's FAR, so the migration
is a compatible, mixed one) is served by uvicorn on 127.0.0.1 (a free port, loopback only) in
this process. A pool of client threads sends POST /search/vector queries, bounded by a request
count and a time limit, while another thread runs the migration through harmony's API
(states.begin/advance, migration.backfill.run_backfill, lifecycle.swap_gallery and
rollback_gallery: the code `harmony migrate` runs). Reported: requests sent, failed (goal 0),
p50/p99 latency, QPS, per phase (idle, backfilling, ready, swapped, rolled back) and the modes
and serving versions the answers carried. The reference in the same run is the same client pool
against the idle gallery (no migration): the ratios say what the migration costs serving.

Run: python bench/bench_serve.py [--full]; writes bench/results/serve.json.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harmony.gallery.store import GalleryStore
from harmony.gallery.synthetic import HashEmbedder
from harmony.io import atomic_write_text

DIM = 128
K = 10
FAR = 1e-3
RESULTS = Path(__file__).parent / "results" / "serve.json"


@dataclass
class Log:
    rows: list = field(default_factory=list)  # (t_start, latency_s, status, mode, gallery_version, phase)
    lock: threading.Lock = field(default_factory=threading.Lock)
    phase: str = "idle"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_registry(root: Path, n: int):
    """A registry with stand-in versions v1, v2 (artifacts: a line naming the hash embedder) and a
    gallery of ``n`` v1 items; the v2 -> v1 verdict is declared, not measured (the gate's input)."""
    from harmony.registry import Registry

    reg = Registry.open(root)
    for v in ("v1", "v2"):
        art = root.parent / f"{v}.txt"
        art.write_text(f"harmony.gallery.synthetic.HashEmbedder({v!r}, {DIM}) stand-in for the load test\n")
        reg.add_version(v, kind="external", artifact=art, backbone="hash", dim=DIM, meta={"stand_in": True})
    reg.record_compatibility("v2", "v1", "bench-serve-stand-in", FAR,
                             {"old_old": 0.9, "new_new": 0.95, "new_old": 0.92, "old_new": 0.92}, True)
    sources = [f"photos/{i:07d}.jpg" for i in range(n)]
    store = GalleryStore.create(root / "galleries" / "bench", DIM, "v1", "flat", use_gpu=False)
    vecs, _ = HashEmbedder("v1", DIM, read_files=False)(sources)
    store.add_items(sources, sources, [f"id{i // 10}" for i in range(n)], vecs, "v1")
    reg.add_gallery("bench", version="v1", path="galleries/bench", far=FAR, codec="flat")
    return reg, sources


def start_server(app, port: int):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread


def client_pool(url: str, queries: np.ndarray, log: Log, n_clients: int, max_requests: int, max_s: float,
                stop: threading.Event) -> None:
    """``n_clients`` threads, each with a keep-alive connection, until ``max_requests`` are sent in
    all, ``max_s`` passed, or ``stop`` is set."""
    import httpx

    sent = [0]
    t_end = time.monotonic() + max_s

    def worker(w: int) -> None:
        rng = np.random.default_rng(w)
        with httpx.Client(base_url=url, timeout=30.0) as c:
            while not stop.is_set() and time.monotonic() < t_end:
                with log.lock:
                    if sent[0] >= max_requests:
                        return
                    sent[0] += 1
                    phase = log.phase
                q = queries[rng.integers(queries.shape[0])]
                t0 = time.perf_counter()
                try:
                    r = c.post("/search/vector", json={"vector": q.tolist(), "k": K})
                    status = r.status_code
                    body = r.json() if status == 200 else {}
                except Exception:  # noqa: BLE001 - a dropped connection is a failed request
                    status, body = -1, {}
                lat = time.perf_counter() - t0
                with log.lock:
                    log.rows.append((t0, lat, status, body.get("mode"), body.get("gallery_version"), phase))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def migrate(reg, log: Log, batch_size: int, delay_s: float, hold_s: float, events: list) -> None:
    """The migration `harmony migrate gallery --to v2`, then `swap`, then `rollback`, in this thread."""
    from harmony.gallery.catalog import open_gallery
    from harmony.migration import states
    from harmony.migration.backfill import run_backfill
    from harmony.migration.lifecycle import rollback_gallery, swap_gallery

    def mark(phase: str) -> None:
        with log.lock:
            log.phase = phase
        events.append({"phase": phase, "t": time.perf_counter()})

    time.sleep(hold_s)
    _, store = open_gallery(reg, "bench", use_gpu=False)
    mig = states.begin(reg, "bench", "v1", "v2", {"bench": "serve"})
    mig = states.advance(reg, mig.id, states.BACKFILLING)
    mark("backfilling")
    r = run_backfill(store, "v2", HashEmbedder("v2", DIM, read_files=False, drift_from="v1", delay_s=delay_s),
                     batch_size=batch_size)
    states.advance(reg, mig.id, states.READY, cursor=r.n_target + r.n_failed,
                   counts={"items": r.n_items, "target_vectors": r.n_target})
    mark("ready")
    time.sleep(hold_s)
    swap_gallery(reg, "bench")
    mark("swapped")
    time.sleep(hold_s)
    rollback_gallery(reg, "bench")
    mark("rolled_back")
    time.sleep(hold_s)
    mark("done")


def stats(rows: list, wall_s: float | None = None) -> dict:
    if not rows:
        return {"sent": 0, "failed": 0}
    lat = np.array([r[1] for r in rows])
    t0 = min(r[0] for r in rows)
    t1 = max(r[0] + r[1] for r in rows)
    span = wall_s or (t1 - t0)
    return {"sent": len(rows), "failed": int(sum(r[2] != 200 for r in rows)),
            "p50_ms": float(np.percentile(lat, 50) * 1e3), "p99_ms": float(np.percentile(lat, 99) * 1e3),
            "qps": len(rows) / span if span > 0 else None}


def run(quick: bool = True) -> dict:
    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    from harmony.serve.app import create_app

    load_before = os.getloadavg()[0]
    n = 20_000 if quick else 200_000
    n_clients, max_requests = 4, 20_000 if quick else 100_000
    idle_s, max_s = (5.0, 60.0) if quick else (10.0, 300.0)
    batch_size, delay_s, hold_s = (1000, 0.2, 2.0) if quick else (5000, 0.2, 5.0)
    with tempfile.TemporaryDirectory() as tmp:
        reg, sources = make_registry(Path(tmp) / "registry", n)
        rng = np.random.default_rng(0)
        picks = [sources[i] for i in rng.choice(n, 200, replace=False)]
        queries, _ = HashEmbedder("v2", DIM, read_files=False, drift_from="v1", drift=0.5)(picks)
        app = create_app(reg, "bench", check_every_s=0.1, registry_every_s=0.5, use_gpu=False)
        port = free_port()
        server, thread = start_server(app, port)
        url = f"http://127.0.0.1:{port}"
        try:
            idle = Log()  # the reference: the same pool, no migration
            t = time.perf_counter()
            client_pool(url, queries, idle, n_clients, max_requests, idle_s, threading.Event())
            idle_stats = stats(idle.rows, time.perf_counter() - t)

            log, events, stop = Log(), [], threading.Event()
            err: list = []

            def migrate_then_stop() -> None:
                try:
                    migrate(reg, log, batch_size, delay_s, hold_s, events)
                except Exception as e:  # noqa: BLE001 - reported, and the clients stop
                    err.append(f"{type(e).__name__}: {e}")
                finally:
                    stop.set()

            mt = threading.Thread(target=migrate_then_stop)
            t = time.perf_counter()
            mt.start()
            client_pool(url, queries, log, n_clients, max_requests, max_s, stop)
            mt.join()
            wall = time.perf_counter() - t
            snapshots = app.state.service.snapshots_built
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    if err:
        raise RuntimeError(f"the migration failed: {err[0]}")
    under = stats(log.rows, wall)
    phases = {}
    for ph in ("idle", "backfilling", "ready", "swapped", "rolled_back", "done"):
        rows = [r for r in log.rows if r[5] == ph]
        if rows:
            phases[ph] = {**stats(rows), "modes": sorted({str(r[3]) for r in rows}),
                          "serving": sorted({str(r[4]) for r in rows})}
    failures = [r for r in log.rows if r[2] != 200]
    result = {
        "benchmark": "serve", "quick": quick, "n_items": n, "dim": DIM, "k": K, "clients": n_clients,
        "max_requests": max_requests, "max_s": max_s, "backfill_batch": batch_size,
        "machine": f"{os.cpu_count()} CPU cores shared by the server, the clients and the backfill; loopback only",
        "load_avg_before": load_before, "load_avg_after": os.getloadavg()[0],
        "idle": idle_stats, "under_migration": under, "phases": phases,
        "failed_statuses": sorted({int(r[2]) for r in failures}), "snapshots_built": snapshots,
        "migration_events_s": [{"phase": e["phase"], "t_s": e["t"] - t} for e in events],
        "ratio_qps_migration_vs_idle": (under["qps"] / idle_stats["qps"]) if idle_stats.get("qps") else None,
        "ratio_p99_migration_vs_idle": under["p99_ms"] / idle_stats["p99_ms"] if idle_stats.get("p99_ms") else None,
    }
    result["rows"] = [{"run": "idle (reference)", **idle_stats}, {"run": "during migration", **under}] + \
        [{"run": f"  phase {k}", **{kk: vv for kk, vv in v.items() if kk not in ("modes", "serving")},
          "modes": ",".join(v["modes"]), "serving": ",".join(v["serving"])} for k, v in phases.items()]
    result["summary"] = (
        f"{n:,}-item gallery, {n_clients} clients over loopback: {under['sent']:,} requests while a migration "
        f"backfilled, swapped and rolled back, {under['failed']} failed; p50 {under['p50_ms']:.1f} ms, p99 "
        f"{under['p99_ms']:.1f} ms, {under['qps']:.0f} QPS ({result['ratio_qps_migration_vs_idle']:.2f}x the idle "
        f"gallery's {idle_stats['qps']:.0f} QPS; p99 {result['ratio_p99_migration_vs_idle']:.2f}x); the server "
        f"followed {snapshots} gallery states without a restart.")
    atomic_write_text(RESULTS, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["rows"], indent=1))
    print(result["summary"])
    return result


if __name__ == "__main__":
    run(quick="--full" not in sys.argv)
