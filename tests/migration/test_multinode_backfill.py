"""A backfill across nodes, simulated on this machine: the same `harmony migrate gallery --devices 1
--num-nodes 2` started twice (NODE_RANK=0 and 1, one MASTER_ADDR/MASTER_PORT), one gallery and
registry. The result equals a one-process backfill item for item and vector for vector; node 1
never opens the registry; a node that dies fails the run cleanly and the re-run finishes only
its shard. Refusals: no NODE_RANK, a coordinator that never comes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import harmony.migration.distributed as dist
from harmony.errors import InvalidInput
from harmony.gallery.synthetic import HashEmbedder
from harmony.migration.checkpoint import BackfillDir

REPO = Path(__file__).resolve().parents[2]
# node 1 as a user starts it, except that opening the registry (or any DuckDB file) ends it
NODE1 = ("import sys, duckdb\n"
         "from harmony.registry import Registry\n"
         "def no(*a, **k):\n"
         "    raise SystemExit('node 1 opened the registry')\n"
         "Registry.open = classmethod(no)\n"
         "duckdb.connect = no\n"
         "from harmony.cli.main import main\n"
         "sys.argv[0] = 'harmony'\n"
         "main()\n")
BATCH = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nodes(env, port: int, node1_env: dict | None = None) -> tuple[subprocess.CompletedProcess, ...]:
    """Both nodes of one launch, node 1 started first (it waits for node 0's hand-off)."""
    args = ["migrate", "gallery", "--gallery", "G", "--to", "v2", "--devices", "1", "--num-nodes", "2",
            "--device", "cpu", "--batch-size", str(BATCH), "--workers", "0", "--registry", str(env.root), "--quiet"]
    base = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port), dist.WAIT_ENV: "120"}
    base.pop(dist.KILL_HOOK, None)
    procs = [subprocess.Popen([sys.executable, "-c", NODE1, *args], cwd=env.tmp, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env={**base, "NODE_RANK": "1", **(node1_env or {})}),
             subprocess.Popen([sys.executable, "-m", "harmony", *args], cwd=env.tmp, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**base, "NODE_RANK": "0"})]
    out = []
    for p in procs:
        text, _ = p.communicate(timeout=240)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, text, ""))
    return out[1], out[0]  # node 0, node 1


@pytest.fixture
def two_galleries(env):
    """G (to migrate across nodes) and R, the same items migrated by one process: the reference."""
    from harmony.gallery.catalog import build_gallery, open_gallery
    from harmony.migration.plan import plan_migration
    from harmony.migration.run import run_migration
    from tests.gallery.helpers import record_verdict

    build_gallery(env.reg, "G", "v1", env.faces)
    build_gallery(env.reg, "R", "v1", env.faces)
    record_verdict(env.reg, "v2", "v1", 1e-3, True)
    out = run_migration(env.reg, plan_migration(env.reg, "R", "v2"), batch_size=BATCH, workers=0)
    assert out.complete
    return env, open_gallery(env.reg, "R")[1]


def _assert_same(env, ref) -> None:
    from harmony.gallery.catalog import open_gallery

    store = open_gallery(env.reg, "G")[1]
    t, tr = store.items(), ref.items()
    assert list(t.item_ids) == list(tr.item_ids) and len(t) == 48
    assert store.index("v2").ntotal == ref.index("v2").ntotal == 48
    names = list(t.item_ids)
    np.testing.assert_array_equal(store.vectors(names, "v2"), ref.vectors(names, "v2"))


def test_two_nodes_equal_one_process_and_node_1_never_opens_the_registry(two_galleries):
    env, ref = two_galleries
    node0, node1 = _nodes(env, _free_port())
    assert node1.returncode == 0, node1.stdout
    assert node0.returncode == 0, node0.stdout
    assert "node 1: its shards of the backfill are done (2 in all" in node1.stdout
    (row,) = env.reg.migrations("G")
    assert row.state == "ready" and row.counts["embedded_this_run"] == 48
    _assert_same(env, ref)


@pytest.mark.slow  # two launches of two nodes (~60 s on 2 shared cores); the fast cover: test_node_0_waits_...
def test_a_dead_node_fails_the_run_and_the_rerun_finishes_only_its_shard(two_galleries):
    from harmony.gallery.catalog import open_gallery

    env, ref = two_galleries
    node0, node1 = _nodes(env, _free_port(), {dist.KILL_HOOK: "1:1"})  # rank 1 (node 1) dies after one commit
    assert node1.returncode != 0
    assert node0.returncode != 0 and "shard(s) 1 of the backfill to v2 are unfinished" in node0.stdout, node0.stdout
    (row,) = env.reg.migrations("G")
    assert (row.state, row.cursor, row.counts) == ("backfilling", None, {})  # the registry row is untouched
    bdir = BackfillDir(open_gallery(env.reg, "G")[1].path, "v2")
    assert (bdir.shard_dir(0).read_cursor().pos, bdir.shard_dir(1).read_cursor().pos) == (24, BATCH)

    node0, node1 = _nodes(env, _free_port())  # the same commands again
    assert node1.returncode == 0, node1.stdout
    assert node0.returncode == 0, node0.stdout
    (row,) = env.reg.migrations("G")
    assert row.state == "ready" and (row.counts["embedded_this_run"], row.counts["resumed_after"]) == (16, 32)
    _assert_same(env, ref)


def test_num_nodes_without_node_rank_is_refused(env, monkeypatch):
    from harmony.cli.migrate import app
    from harmony.gallery.catalog import build_gallery

    build_gallery(env.reg, "G", "v1", env.faces)
    for key in ("NODE_RANK", "SLURM_NODEID"):
        monkeypatch.delenv(key, raising=False)
    r = CliRunner().invoke(app, ["gallery", "--gallery", "G", "--to", "v2", "--num-nodes", "2", "--device", "cpu"])
    assert r.exit_code != 0 and "NODE_RANK is not set" in r.output
    assert env.reg.migrations("G") == []  # refused before anything was registered
    with pytest.raises(InvalidInput, match="NODE_RANK=2: must be 0..1"):
        dist.node_rank_from_env(2, {"NODE_RANK": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    with pytest.raises(InvalidInput, match="MASTER_PORT is not set"):
        dist.node_rank_from_env(2, {"SLURM_NODEID": "1", "MASTER_ADDR": "h"})
    assert dist.node_rank_from_env(2, {"SLURM_NODEID": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1"}) == 1


def test_a_node_waiting_for_a_coordinator_that_never_comes(env, monkeypatch):
    from harmony.cli.migrate import app
    from harmony.registry import Registry

    monkeypatch.setattr(Registry, "open", classmethod(lambda *a, **k: pytest.fail("node 1 opened the registry")))
    for k, v in {"NODE_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999", dist.WAIT_ENV: "0.5"}.items():
        monkeypatch.setenv(k, v)
    launch = dist.check_launch(1, 2, "cpu", env.root, "G")
    assert (launch.node_rank, launch.run, launch.handoff) == (1, "127.0.0.1:29999", env.root / "handoffs" / "G.json")
    r = CliRunner().invoke(app, ["gallery", "--gallery", "G", "--to", "v2", "--num-nodes", "2", "--device", "cpu",
                                 "--registry", str(env.root)])
    assert r.exit_code != 0 and "the coordinator (NODE_RANK=0) handed this run" in r.output, r.output
    assert "start the same command with NODE_RANK=0" in r.output
    assert not (env.root / "handoffs").exists()  # node 1 wrote nothing


def test_node_0_waits_for_shards_held_elsewhere_and_names_those_nobody_holds(make_gallery):
    """What node 0 does once its own ranks are done: shards whose lock some process (another
    node's rank) holds are waited for; unfinished shards nobody holds fail the run, named."""
    import threading

    store = make_gallery(32).store
    bdir = BackfillDir(store.path, "v2")
    cursor = bdir.start(store.dim)
    t = store.items()
    shards = dist.split_pending(t.ids, t.seqs, np.full(len(t), -1), 0, cursor, 2)
    cursor = bdir.start_shards(cursor, shards, 2)
    with pytest.raises(dist.RankFailed, match=r"shard\(s\) 0, 1 of the backfill to v2 are unfinished") as e:
        dist.wait_shards(bdir, cursor, shards)
    assert "every node" in e.value.hint
    embed = HashEmbedder("v2", store.dim)
    dist.run_in_process(store, bdir, shards, [0], embed, 8, 0)  # node 0's shard
    other = dist.ShardWriter(bdir, store.dim, rank=1)  # node 1's rank holds shard 1 and is still at it
    items = dist.shard_batches(store, bdir, shards, [1], 8, other)

    def node1() -> None:
        for k, stop, ids, seqs, sources in items:
            time.sleep(0.2)
            other.commit(dist.ShardBatch(k, stop, ids, seqs, None), *embed(sources))
        other.close()

    th = threading.Thread(target=node1)
    th.start()
    dist.wait_shards(bdir, cursor, shards, every_s=0.05)  # returns once shard 1 is done
    assert dist.unfinished(bdir, cursor, shards) == [] and len(items) == 2
    th.join()
    bdir.merge_shards(cursor)
