"""Training across processes (DDP, gloo on CPU, world size 2) against one process on the same
global batch.

- one optimisation step, function level (the P x K sampler's per-rank chunks, ``global_batch``,
  global BatchNorm, DDP's gradient averaging): same loss and updated weights as one process, for
  the triplet and the harmonic objective;
- ``harmony train base`` with the recipe ``recipes/base-tiny-ddp.yaml`` (shrunk), two processes
  started by Lightning: a rank that dies mid-run fails the run with the registry untouched,
  ``--resume`` completes it and registers exactly one version with the weights one process
  trains, and a second run of the name is refused; the same under torchrun (rank 1 waits for
  rank 0's hand-off; a refused name stops both);
- ranks other than 0 never open the registry; devices the machine lacks are refused by key.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml
from typer.testing import CliRunner

from harmony.cli.main import app
from harmony.data.sampler import PKBatchSampler
from harmony.data.splits import synthetic_split
from harmony.errors import InvalidInput
from harmony.recipe import load_recipe, recipe_from_dict
from harmony.registry import Registry
from harmony.training.distributed import (
    DIE_AT_STEP,
    GlobalBatchNorm,
    check_devices,
    global_batch,
    hand_off,
    launch_from_env,
)
from harmony.training.runs import FAILED, FINISHED, LAST
from tests.conftest import MICRO

REPO = Path(__file__).resolve().parents[2]
P, K = 4, 4


def _recipe():
    return recipe_from_dict({**MICRO, "train": {**MICRO["train"], "p": P, "k": K}})


def _one_step(rank: int, world: int) -> dict:
    """One Adam step of the triplet and of the harmonic objective on this rank's share of the
    first P x K batch; returns the losses and the updated weights (identical on every rank)."""
    from torch.nn.parallel import DistributedDataParallel

    from harmony.models.embedder import Embedder
    from harmony.training.base import triplet_objective
    from harmony.training.harmonic import make_objective
    from harmony.training.runner import spec_from_recipe

    recipe = _recipe()
    train = synthetic_split(recipe.data, "train")
    idx = next(iter(PKBatchSampler(train.labels, P, K, steps=1, seed=3, rank=rank, num_replicas=world)))
    x = torch.from_numpy(train.images[idx]).permute(0, 3, 1, 2).float().div(255)
    batch = {"y": torch.as_tensor(train.labels[idx]), "idx": torch.as_tensor(idx)}
    g = torch.Generator().manual_seed(5)  # cached "v1" embeddings and prototypes, as the harmonic loss has them
    old = torch.nn.functional.normalize(torch.randn(len(train.labels), 16, generator=g), dim=1)
    protos = torch.nn.functional.normalize(torch.randn(int(train.labels.max()) + 1, 16, generator=g), dim=1)
    objectives = {"triplet": triplet_objective, "harmonic": make_objective(recipe, old, protos)}
    out = {}
    for name, objective in objectives.items():
        torch.manual_seed(0)
        model = Embedder(spec_from_recipe(recipe)).train()
        net = model
        if world > 1:
            GlobalBatchNorm().apply(model)
            net = DistributedDataParallel(model)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        gb, emb = global_batch(batch, net(x))
        loss = objective(SimpleNamespace(spec=recipe.train), gb, emb)
        loss.backward()
        opt.step()
        GlobalBatchNorm().revert(model)
        out[name] = {"loss": loss.item(), "n": len(emb), "state": {k: v.clone() for k, v in model.state_dict().items()}}
    return out


def _worker(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    try:
        torch.save(_one_step(rank, world), f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_sampler_chunks_concatenate_to_the_single_process_batch():
    labels = np.repeat(np.arange(12), 5)
    one = PKBatchSampler(labels, 6, 4, steps=5, seed=7)
    for world in (2, 3):
        ranks = [PKBatchSampler(labels, 6, 4, steps=5, seed=7, rank=r, num_replicas=world) for r in range(world)]
        for epoch in (0, 1):
            for s in (one, *ranks):
                s.set_epoch(epoch)
            for whole, *parts in zip(one, *ranks):
                assert [i for part in parts for i in part] == whole
                for part in parts:  # whole identities per rank
                    assert len(part) == 6 // world * 4 and len(set(labels[part])) == 6 // world
    assert list(one) != list(PKBatchSampler(labels, 6, 4, steps=5, seed=8))
    with pytest.raises(InvalidInput, match="train.p"):
        PKBatchSampler(labels, 6, 4, steps=1, rank=0, num_replicas=4)


def test_one_step_of_two_gloo_processes_equals_one_process(tmp_path):
    mp.start_processes(_worker, args=(2, str(tmp_path)), nprocs=2, start_method="spawn")
    ref = _one_step(0, 1)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for name in ("triplet", "harmonic"):
            assert got[name]["n"] == ref[name]["n"] == P * K  # each rank mined over the global batch
            assert got[name]["loss"] == pytest.approx(ref[name]["loss"], rel=1e-5, abs=1e-6)
            for k, v in ref[name]["state"].items():
                torch.testing.assert_close(got[name]["state"][k], v, rtol=1e-4, atol=1e-5,
                                           msg=f"{name}: {k} differs after the step (rank {rank})")
    assert ref["triplet"]["loss"] > 0 and ref["harmonic"]["loss"] > 0


# --- the CLI, two processes started by Lightning ------------------------------------------------

TINY = {"epochs": 3, "steps_per_epoch": 2, "p": P, "k": K, "log_every": 1}


def _ddp_recipe(tmp_path: Path, devices: int = 2) -> Path:
    """recipes/base-tiny-ddp.yaml with the micro recipe's data, model and step counts."""
    raw = yaml.safe_load((REPO / "recipes" / "base-tiny-ddp.yaml").read_text())
    raw["data"], raw["model"], raw["eval"] = MICRO["data"], MICRO["model"], MICRO["eval"]
    raw["train"].update(TINY)
    raw["train"]["devices"] = devices
    if devices == 1:  # the single-process reference: no process group at all
        raw["train"]["strategy"] = "auto"
    path = tmp_path / f"tiny-ddp-{devices}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _harmony(tmp_path: Path, *args: str, env: dict | None = None, launcher: tuple = ()) -> subprocess.CompletedProcess:
    e = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, *launcher, "-m", "harmony", *args, "--quiet"], cwd=tmp_path, env=e,
                          capture_output=True, text=True, timeout=240, check=False)


@pytest.fixture(scope="module")
def single_process_weights(tmp_path_factory) -> dict:
    """What one process trains on the same global batches (the recipe with devices: 1)."""
    from harmony.training.base import fit_base

    tmp = tmp_path_factory.mktemp("single")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, _ = fit_base(load_recipe(_ddp_recipe(tmp, devices=1)))
    finally:
        torch.set_num_threads(threads)
    return model.state_dict()


def _assert_weights(reg: Registry, name: str, want: dict) -> None:
    from harmony.models.loading import load_embedder

    got = load_embedder(reg, name).state_dict()
    assert got.keys() == want.keys()
    for k, w in want.items():
        torch.testing.assert_close(got[k], w, rtol=1e-3, atol=1e-4, msg=f"{k}: DDP != one process")


two_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the DDP recipe runs 2 CPU processes")


@two_cores
def test_cli_ddp_rank_death_then_resume_registers_one_version_then_the_name_is_refused(tmp_path,
                                                                                      single_process_weights):
    """Lightning starts rank 1; it dies in epoch 2: the run fails in one line with nothing
    registered, ``--resume`` completes it (one version, the single-process weights), and a
    second run of the name is refused by rank 0 before any other process starts."""
    recipe, root = _ddp_recipe(tmp_path), tmp_path / "registry"
    args = ("train", "base", "--recipe", str(recipe), "--name", "v1", "--registry", str(root))
    dead = _harmony(tmp_path, *args, env={DIE_AT_STEP: "3"})  # rank 1 exits in epoch 2, after epoch 1's checkpoint
    assert dead.returncode == 2, dead.stdout + dead.stderr
    assert "error: training across processes failed" in dead.stderr and "--resume" in dead.stderr
    assert Registry.open(root).list_versions() == []
    run = root / "runs" / "v1"
    assert (run / "base" / LAST).is_file() and not (run / FINISHED).exists()

    r = _harmony(tmp_path, *args, "--resume")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resuming the unfinished run" in r.stdout
    reg = Registry.open(root)
    assert [v.name for v in reg.list_versions()] == ["v1"] and reg.get_version("v1").meta["processes"] == 2
    assert (run / FINISHED).exists() and not (run / FAILED).exists() and not list(run.glob(f"*/{LAST}"))
    assert not (run / "ddp-handoff.pt").exists()
    _assert_weights(reg, "v1", single_process_weights)
    assert not (tmp_path / "lightning_logs").exists() and not (tmp_path / "checkpoints").exists()

    again = CliRunner().invoke(app, [*args, "--quiet"])  # rank 0 refuses before Lightning starts anything: in-process
    assert again.exit_code == 2 and "already exists" in again.output
    assert len(again.output.strip().splitlines()) == 1, again.output
    assert [v.name for v in Registry.open(root).list_versions()] == ["v1"]


@two_cores
def test_torchrun_starts_both_ranks_and_a_refused_name_stops_them(tmp_path, single_process_weights):
    """torchrun starts every rank at once: rank 1 waits for rank 0's hand-off, and when rank 0
    refuses the name, torchrun stops rank 1 instead of leaving it waiting."""
    recipe, root = _ddp_recipe(tmp_path), tmp_path / "registry"
    args = ("train", "base", "--recipe", str(recipe), "--name", "v1", "--registry", str(root))
    torchrun = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    r = _harmony(tmp_path, *args, launcher=torchrun)
    assert r.returncode == 0, r.stdout + r.stderr
    reg = Registry.open(root)
    assert [v.name for v in reg.list_versions()] == ["v1"] and reg.get_version("v1").meta["processes"] == 2
    _assert_weights(reg, "v1", single_process_weights)

    again = _harmony(tmp_path, *args, launcher=torchrun)
    assert again.returncode != 0 and "already exists" in again.stderr
    assert [v.name for v in Registry.open(root).list_versions()] == ["v1"]


# --- rank gating and devices, in-process --------------------------------------------------------

def test_launch_from_env_reads_every_launcher():
    assert launch_from_env({}).is_zero
    assert launch_from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}) == (l := launch_from_env(
        {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})) and (l.rank, l.world_size, l.launcher) == (3, 4, "torchrun")
    assert launch_from_env({"SLURM_PROCID": "2", "SLURM_NTASKS": "8"}).rank == 2
    assert launch_from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).is_zero  # a one-task job step
    assert launch_from_env({"LOCAL_RANK": "1", "WORLD_SIZE": "2"}).rank == 1  # a Lightning child
    assert not launch_from_env({"NODE_RANK": "1", "WORLD_SIZE": "16"}).is_zero  # node 1 of a Lightning launch
    assert launch_from_env({"LOCAL_RANK": "0", "NODE_RANK": "0", "WORLD_SIZE": "2"}).is_zero


def test_a_rank_other_than_0_never_opens_the_registry(tmp_path, monkeypatch):
    """Rank 1 as Lightning starts it: it trains from rank 0's run folder and hand-off, and neither
    opens the registry nor writes anything else."""
    from harmony.training import base

    calls = []
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(Registry, "open", classmethod(lambda *a, **k: pytest.fail("rank 1 opened the registry")))
    monkeypatch.setattr(base, "fit_base", lambda recipe, run, progress: calls.append(run))
    root = tmp_path / "registry"
    args = ["train", "base", "--recipe", str(_ddp_recipe(tmp_path)), "--name", "v1", "--registry", str(root)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "rank 0 left no ddp-handoff.pt" in r.output and not calls  # not started by rank 0
    run = root / "runs" / "v1"
    run.mkdir(parents=True)
    hand_off(run)  # what rank 0 leaves before fit
    r = CliRunner().invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert [c.path for c in calls] == [run] and sorted(p.name for p in root.rglob("*")) == ["ddp-handoff.pt", "runs",
                                                                                           "v1"]


def test_devices_the_machine_lacks_are_refused_by_key(tmp_path):
    t = _recipe().train
    from dataclasses import replace

    with pytest.raises(InvalidInput, match="'train.devices'.*CPU processes"):
        check_devices(replace(t, accelerator="cpu", devices=os.cpu_count() + 64))
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInput, match="'train.accelerator'.*no CUDA GPU"):
            check_devices(replace(t, accelerator="gpu", devices=1))
    else:
        with pytest.raises(InvalidInput, match="'train.devices'.*CUDA GPU"):
            check_devices(replace(t, accelerator="gpu", devices=torch.cuda.device_count() + 1))
    check_devices(replace(t, accelerator="cpu", devices=1))

    raw = yaml.safe_load(_ddp_recipe(tmp_path).read_text())
    raw["train"]["devices"] = raw["train"]["p"] = 2 * (os.cpu_count() or 1)  # P still splits over the ranks
    bad = tmp_path / "too-many.yaml"
    bad.write_text(yaml.safe_dump(raw))
    root = tmp_path / "registry"
    r = CliRunner().invoke(app, ["train", "base", "--recipe", str(bad), "--name", "v1", "--registry", str(root)])
    assert r.exit_code == 2 and "train.devices" in r.output and not root.exists()
    assert len(r.output.strip().splitlines()) == 1, r.output
    with pytest.raises(InvalidInput, match="'train.p'"):
        recipe_from_dict({**MICRO, "train": {**MICRO["train"], "p": 3, "devices": 2}})
