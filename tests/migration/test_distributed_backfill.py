"""A backfill over 2 CPU processes (Lightning ddp_spawn, gloo): item for item and vector for vector
what a one-process backfill gives; a rank killed mid-shard fails the run cleanly, and the resume
embeds only that rank's uncommitted items (the other, finished shard is not redone)."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harmony.errors import InvalidInput
from harmony.gallery.store import GalleryStore
from harmony.gallery.synthetic import HashEmbedder
from harmony.migration.backfill import backfill_status, run_backfill
from harmony.migration.checkpoint import BackfillDir
from harmony.migration.distributed import KILL_HOOK, Launch, RankFailed, check_launch

DIM = 32
N = 96
BATCH = 16


@dataclass(frozen=True)
class LoggedEmbedder:
    """HashEmbedder that appends "pid name" per embedded source to ``log`` (O_APPEND: one write a
    batch, safe across processes). With ``hold_from``, a batch with an item named at or after it
    waits until shard 0 is finished, so rank 1 dies only after rank 0 is done."""

    log: str
    hold_from: str | None = None
    gallery: str | None = None

    def __call__(self, sources: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if self.hold_from is not None and any(Path(s).name >= self.hold_from for s in sources):
            _wait_shard_done(Path(self.gallery), 0, N // 2)
        out = HashEmbedder("v2", DIM)(sources)
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, "".join(f"{os.getpid()} {Path(s).name}\n" for s in sources).encode())
        finally:
            os.close(fd)
        return out


def _wait_shard_done(gallery: Path, k: int, n: int, timeout: float = 60.0) -> None:
    p = gallery / "migrations" / "v2" / f"shard-{k:03d}" / "CURSOR"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(p.read_text())["pos"] >= n:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise AssertionError(f"shard {k} did not finish within {timeout} s")


def _log(path: Path) -> list[tuple[int, str]]:
    if not path.exists():
        return []
    return [(int(p), name) for p, name in (line.split() for line in path.read_text().splitlines())]


def _assert_same_backfill(store: GalleryStore, ref: GalleryStore) -> None:
    t, tr = store.items(), ref.items()
    np.testing.assert_array_equal(t.ids, tr.ids)
    assert list(t.item_ids) == list(tr.item_ids) and set(t.versions) == {"v2"}
    assert store.index("v2").ntotal == ref.index("v2").ntotal == len(tr)
    names = list(t.item_ids)
    np.testing.assert_array_equal(store.vectors(names, "v2"), ref.vectors(names, "v2"))


@pytest.fixture
def galleries(make_gallery, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    g = make_gallery(N)
    ref = GalleryStore.open(shutil.copytree(g.store.path, tmp_path / "ref"), use_gpu=False)
    r = run_backfill(ref, "v2", HashEmbedder("v2", DIM), batch_size=BATCH, workers=0)
    assert r.complete and r.n_embedded == N
    return g, ref


def test_two_processes_embed_each_item_once_and_equal_one_process(galleries, tmp_path):
    g, ref = galleries
    log = tmp_path / "embedded.log"
    bars = []
    r = run_backfill(g.store, "v2", LoggedEmbedder(str(log)), batch_size=BATCH, launch=Launch(2),
                     progress=bars.append)
    assert (r.complete, r.n_embedded, r.n_failed, r.n_target) == (True, N, 0, N)
    assert bars[-1].finished and bars[-1].done == N and all(b.done <= b.total == N for b in bars)
    calls = _log(log)
    assert sorted(name for _, name in calls) == sorted(g.store.items().item_ids)  # each item once, none repeated
    pids = {}
    for pid, name in calls:
        pids.setdefault(pid, []).append(name)
    assert len(pids) == 2 and os.getpid() not in pids  # two ranks, neither of them this process
    # contiguous shards in the backfill's (seq) order: one rank the first half, the other the second
    assert sorted(sorted(v) for v in pids.values()) == [sorted(g.store.items().item_ids[: N // 2]),
                                                        sorted(g.store.items().item_ids[N // 2:])]
    _assert_same_backfill(g.store, ref)
    assert not BackfillDir(g.store.path, "v2").path.exists()  # merged, finished, folder gone


def test_killed_rank_fails_cleanly_and_resumes_only_its_own_shard(galleries, tmp_path, monkeypatch):
    g, ref = galleries
    log = tmp_path / "embedded.log"
    emb = LoggedEmbedder(str(log), hold_from=f"item{N // 2:05d}.img", gallery=str(g.store.path))
    monkeypatch.setenv(KILL_HOOK, "1:1")  # rank 1 commits one batch, embeds the next, SIGKILLs itself
    with pytest.raises(RankFailed, match="rank") as e:
        run_backfill(g.store, "v2", emb, batch_size=BATCH, launch=Launch(2))
    assert "re-run" in e.value.hint
    bdir = BackfillDir(g.store.path, "v2")
    cursor = bdir.read_cursor()
    assert cursor.n_shards == 2 and cursor.n_segments == 0 and not g.store.has_index("v2")
    s0, s1 = bdir.shard_dir(0), bdir.shard_dir(1)
    assert (s0.read_cursor().pos, s1.read_cursor().pos) == (N // 2, BATCH)
    assert len(list(s0.path.glob("seg-*.npz"))) == N // 2 // BATCH
    before = len(_log(log))
    assert before == N // 2 + 2 * BATCH  # shard 0, rank 1's committed batch and the one it died with
    st = backfill_status(g.store, "v2")
    assert (st.state, st.done, st.pending) == ("backfilling", N // 2 + BATCH, N // 2 - BATCH)

    monkeypatch.delenv(KILL_HOOK)
    r = run_backfill(g.store, "v2", LoggedEmbedder(str(log)), batch_size=BATCH, launch=Launch(2))
    assert (r.complete, r.n_embedded, r.n_resumed) == (True, N // 2 - BATCH, N // 2 + BATCH)
    resumed = sorted(name for _, name in _log(log)[before:])
    assert resumed == sorted(g.store.items().item_ids[N // 2 + BATCH:])  # only rank 1's uncommitted items
    _assert_same_backfill(g.store, ref)


def test_devices_the_machine_lacks_are_refused_by_the_cli(env):
    from typer.testing import CliRunner

    from harmony.cli.migrate import app
    from harmony.gallery.catalog import build_gallery

    build_gallery(env.reg, "G", "v1", env.faces)
    r = CliRunner().invoke(app, ["gallery", "--gallery", "G", "--to", "v2", "--devices", "4096", "--device", "cpu"])
    assert r.exit_code != 0 and "--devices 4096" in r.output and "CPU" in r.output
    assert env.reg.migrations("G") == []  # refused before anything was registered
    r = CliRunner().invoke(app, ["gallery", "--gallery", "G", "--to", "v2", "--devices", "2", "--max-batches", "1"])
    assert r.exit_code != 0 and "--max-batches" in r.output


def test_devices_the_machine_lacks_are_refused(monkeypatch):
    for key in ("NODE_RANK", "SLURM_NODEID"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(InvalidInput, match="--devices 4096"):
        check_launch(4096, device="cpu")
    with pytest.raises(InvalidInput, match="--num-nodes 2: NODE_RANK is not set"):  # across nodes: see
        check_launch(1, 2, device="cpu")  # test_multinode_backfill.py
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(InvalidInput, match="no CUDA GPU"):
            check_launch(2, device="cuda")
    assert check_launch(1, device="cpu") == Launch(1, 1, "cpu")


def _faces(env) -> tuple[list[Path], list[str]]:
    files = sorted(env.faces.glob("*/*.png"))
    return files, [str(f.relative_to(env.faces)) for f in files]


def test_torch_version_over_two_ranks_dead_rank_leaves_registry_untouched(env, monkeypatch):
    """A registered torch version travels to the ranks by path (no registry there); a rank that
    dies fails the migration with RankFailed, the registry row stays as it was, the re-run (here
    without --devices) finishes the shards and merges them."""
    from harmony.gallery.catalog import build_gallery, open_gallery
    from harmony.migration.plan import plan_migration
    from harmony.migration.run import run_migration
    from tests.gallery.helpers import direct_vectors, record_verdict

    build_gallery(env.reg, "G", "v1", env.faces)
    record_verdict(env.reg, "v2", "v1", 1e-3, True)
    plan = plan_migration(env.reg, "G", "v2")
    monkeypatch.setenv(KILL_HOOK, "0:1")
    with pytest.raises(RankFailed):
        run_migration(env.reg, plan, batch_size=8, launch=Launch(2), mirror_every_s=0.0)
    (row,) = env.reg.migrations("G")
    assert (row.state, row.cursor, row.counts) == ("backfilling", None, {})  # as it was before the backfill ran
    _, store = open_gallery(env.reg, "G")
    assert not store.has_index("v2")
    mig = plan_migration(env.reg, "G", "v2")
    assert mig.resume == row.id
    monkeypatch.delenv(KILL_HOOK)
    out = run_migration(env.reg, mig, batch_size=8)  # the split in flight finishes in one process as well
    assert out.complete and out.migration.state == "ready" and out.backfill.n_resumed > 0
    files, names = _faces(env)
    np.testing.assert_allclose(store.vectors(names, "v2"), direct_vectors(env.reg, "v2", files), atol=1e-5)


def test_reader_workers_give_the_vectors_of_one_thread(env):
    """The one-process pipeline (a forkserver reader worker, background commits) embeds exactly
    what reading in the main thread does."""
    from harmony.gallery.catalog import build_gallery, open_gallery
    from harmony.migration.plan import plan_migration
    from harmony.migration.run import run_migration
    from tests.gallery.helpers import record_verdict

    _, names = _faces(env)
    vectors = []
    for gallery, workers in (("A", 0), ("B", 1)):
        build_gallery(env.reg, gallery, "v1", env.faces)
        record_verdict(env.reg, "v2", "v1", 1e-3, True)
        out = run_migration(env.reg, plan_migration(env.reg, gallery, "v2"), batch_size=8, workers=workers)
        assert out.complete and out.backfill.batches == 6 and out.migration.counts["read_s"] > 0
        vectors.append(open_gallery(env.reg, gallery)[1].vectors(names, "v2"))
    np.testing.assert_array_equal(vectors[0], vectors[1])
