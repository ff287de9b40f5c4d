"""A real kill -9 of a `harmony migrate gallery` process mid-backfill, then the same command again.

The interrupted-and-resumed gallery must equal one migrated without interruption (a copy of the
same registry): the same items under the same ids, every item with exactly one v2 vector, the
same vectors. The seed of the kill points is in the failure messages.
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

import numpy as np
from typer.testing import CliRunner

from harmony.cli.migrate import app
from harmony.gallery.store import GalleryStore
from harmony.gallery.catalog import build_gallery
from harmony.registry import Registry
from tests.gallery.helpers import record_verdict, write_faces

CMD = ["gallery", "--gallery", "G", "--to", "v2", "--batch-size", "1", "--quiet"]


def committed(root) -> int:
    try:
        return json.loads((root / "galleries" / "G" / "migrations" / "v2" / "CURSOR").read_text())["n_segments"]
    except (OSError, ValueError, KeyError):  # not started yet, or already finished
        return 0


def test_kill_9_mid_backfill_then_rerun_equals_uninterrupted(env):
    faces = write_faces(env.tmp / "faces80", 20, 4)
    build_gallery(env.reg, "G", "v1", faces)
    record_verdict(env.reg, "v2", "v1", 1e-3, True)
    ref_root = shutil.copytree(env.root, env.tmp / "ref-registry")
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    child_env = dict(os.environ, OMP_NUM_THREADS="1")
    for _ in range(2):
        before = committed(env.root)
        proc = subprocess.Popen([sys.executable, "-c", "from harmony.cli.migrate import app; app()", *CMD,
                                 "--registry", str(env.root)], env=child_env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while committed(env.root) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.03))  # anywhere: embedding, a segment or cursor write, a registry mirror
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"seed {seed}: ended before the kill: {proc.stderr.read()[-2000:]}"
        assert committed(env.root) > before, f"seed {seed}: no progress before the kill"
    assert 0 < committed(env.root) < 80, f"seed {seed}"
    assert env.reg.migrations("G")[-1].state == "backfilling"

    runner = CliRunner()
    for root in (env.root, ref_root):
        r = runner.invoke(app, [*CMD, "--registry", str(root), "--json"])
        assert r.exit_code == 0, f"seed {seed}: {r.output}"
        out = json.loads(r.stdout)
        assert out["migration"]["state"] == "ready" and out["backfill"]["complete"]
    mig = env.reg.migrations("G")[-1]
    assert (mig.state, mig.cursor, mig.counts["target_vectors"], mig.counts["failed"]) == ("ready", 80, 80, 0)
    assert mig.counts["resumed_after"] > 0, f"seed {seed}"
    a = GalleryStore.open(env.root / "galleries" / "G", use_gpu=False)
    b = GalleryStore.open(ref_root / "galleries" / "G", use_gpu=False)
    ta, tb = a.items(), b.items()
    np.testing.assert_array_equal(ta.ids, tb.ids)
    assert list(ta.item_ids) == list(tb.item_ids) and set(ta.versions) == {"v2"}
    assert a.index("v2").ntotal == b.index("v2").ntotal == 80  # nothing lost, nothing duplicated
    names = list(ta.item_ids)
    np.testing.assert_array_equal(a.vectors(names, "v2"), b.vectors(names, "v2"), err_msg=f"seed {seed}")
    assert Registry.open(ref_root).migrations("G")[-1].counts["resumed_after"] == 0
