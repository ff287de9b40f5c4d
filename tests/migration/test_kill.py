"""A real kill -9 of a backfill process at random points, then a resume in-process.

Compared with an uninterrupted run on a copy of the same gallery: the same items, each with the
same v2 vector, none lost, none duplicated. The seed of the kill points is in the failure message.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from harmony.gallery.store import GalleryStore
from harmony.gallery.synthetic import HashEmbedder
from harmony.migration.backfill import run_backfill

DIM = 32
WORKER = Path(__file__).with_name("backfill_worker.py")


def committed_segments(gallery: Path) -> int:
    try:
        return json.loads((gallery / "migrations" / "v2" / "CURSOR").read_text())["n_segments"]
    except (OSError, ValueError):  # not started yet (a torn CURSOR would fail the final check)
        return 0


def test_kill_9_at_random_points_then_resume(make_gallery, tmp_path):
    g = make_gallery(1200)
    ref = GalleryStore.open(shutil.copytree(g.store.path, tmp_path / "ref"), use_gpu=False)
    run_backfill(ref, "v2", HashEmbedder("v2", DIM), batch_size=16)
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for _ in range(3):
        before = committed_segments(g.store.path)
        proc = subprocess.Popen([sys.executable, str(WORKER), str(g.store.path), "v2", "16", "0.01", str(DIM)],
                                env=env, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while committed_segments(g.store.path) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.08))  # anywhere: inside embed_fn, a segment write, the cursor write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"seed {seed}: worker ended early: {proc.stderr.read()[-2000:]}"
        assert committed_segments(g.store.path) > before, f"seed {seed}: no progress before the kill"
    assert 0 < committed_segments(g.store.path) < 1200 // 16, f"seed {seed}"
    r = run_backfill(g.store, "v2", HashEmbedder("v2", DIM), batch_size=16)
    assert r.complete and r.n_resumed + r.n_embedded == 1200 and r.n_failed == 0, f"seed {seed}: {r}"
    t, tr = g.store.items(), ref.items()
    np.testing.assert_array_equal(t.ids, tr.ids)
    assert list(t.item_ids) == list(tr.item_ids) and set(t.versions) == {"v2"}
    assert g.store.index("v2").ntotal == ref.index("v2").ntotal == 1200  # no duplicates
    names = list(t.item_ids)
    np.testing.assert_array_equal(g.store.vectors(names, "v2"), ref.vectors(names, "v2"), err_msg=f"seed {seed}")
    np.testing.assert_array_equal(g.store.vectors(names, "v2"), g.direct("v2", names))


def test_kill_9_of_a_random_order_backfill_resumes_in_the_same_order(make_gallery):
    """The order is planned once (ORDER file + cursor) and survives kill -9: the committed batches
    are a prefix of the seeded plan, and the resumed run embeds exactly the rest of it, in order."""
    from harmony.migration.checkpoint import BackfillDir
    from harmony.migration.order import backfill_order

    g = make_gallery(400)
    t = g.store.items()
    by_seq = t.ids[np.argsort(t.seqs, kind="stable")]
    plan = by_seq[backfill_order("random", 400, seed=9)]
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for _ in range(2):
        before = committed_segments(g.store.path)
        proc = subprocess.Popen([sys.executable, str(WORKER), str(g.store.path), "v2", "16", "0.01", str(DIM),
                                 "random", "9"], env=env, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while committed_segments(g.store.path) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"seed {seed}: worker ended early: {proc.stderr.read()[-2000:]}"
    bdir = BackfillDir(g.store.path, "v2")
    cursor = bdir.read_cursor()
    assert (cursor.order, cursor.seed, cursor.n_planned) == ("random", 9, 400), f"seed {seed}"
    np.testing.assert_array_equal(bdir.read_plan(cursor).ids, plan)
    done = bdir.load(cursor).ids
    assert 0 < done.size < 400 and cursor.pos == done.size, f"seed {seed}"
    np.testing.assert_array_equal(done, plan[:done.size], err_msg=f"seed {seed}")  # committed in plan order
    seen: list[str] = []
    inner = HashEmbedder("v2", DIM)

    def recording(sources):
        seen.extend(sources)
        return inner(sources)

    r = run_backfill(g.store, "v2", recording, batch_size=16)
    rows = t.rows_of_ids(plan[done.size:])
    assert seen == [str(s) for s in t.sources[rows]], f"seed {seed}: the resumed run left the plan"
    assert r.complete and r.n_resumed + r.n_embedded == 400 and g.store.index("v2").ntotal == 400
    names = list(g.store.items().item_ids)
    np.testing.assert_array_equal(g.store.vectors(names, "v2"), g.direct("v2", names))
