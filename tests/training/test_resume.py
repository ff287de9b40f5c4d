"""Training resumes: kill after epoch 1 of a micro recipe, resume, compare with an uninterrupted run.

The kill is simulated in-process (the epoch checkpoint raises right after writing epoch 1), for
base and for both harmonic stages, and done for real once: ``kill -9`` of a ``harmony train base``
subprocess, then ``--resume``. Same final weights within float tolerance, same history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from typer.testing import CliRunner

from harmony.cli.main import app
from harmony.models.loading import load_embedder
from harmony.recipe import recipe_from_dict
from harmony.registry import Registry
from harmony.training.base import fit_base, train_base
from harmony.training.callbacks import EpochCheckpoint
from harmony.training.harmonic import train_harmonic
from harmony.training.runs import FINISHED, LAST, run_path, unfinished_run
from tests.conftest import MICRO, write_recipe

BASE = {"train": {**MICRO["train"], "epochs": 3}}
HARMONIC = {"train": {**MICRO["train"], "steps_per_epoch": 2},
            "harmonic": {**MICRO["harmonic"], "head_steps": 4, "full_steps": 4}}  # 2 epochs per stage


class Killed(Exception):
    """Stands for a kill: raised right after a stage's first epoch checkpoint is on disk."""


def kill_after_first_epoch(monkeypatch, stage: str) -> None:
    write = EpochCheckpoint.on_train_epoch_end

    def write_then_die(self, trainer, module):
        write(self, trainer, module)
        if self.dirpath.name == stage and trainer.current_epoch == 0:
            raise Killed

    monkeypatch.setattr(EpochCheckpoint, "on_train_epoch_end", write_then_die)


def assert_same_weights(reg_a: Registry, a: str, reg_b: Registry, b: str) -> None:
    wa, wb = load_embedder(reg_a, a).state_dict(), load_embedder(reg_b, b).state_dict()
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-5, atol=1e-6, msg=f"{k} differs after resuming")


def assert_same_history(a: list, b: list) -> None:
    assert [(h["epoch"], h["step"]) for h in a] == [(h["epoch"], h["step"]) for h in b]
    assert [h["val"] for h in a] == pytest.approx([h["val"] for h in b], abs=1e-6)


def test_base_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    r = recipe_from_dict({**MICRO, **BASE})
    reg_a, reg_b = Registry.open(tmp_path / "a"), Registry.open(tmp_path / "b")
    full = train_base(reg_a, r, "v1")
    assert not full.resumed and len(full.history) == 3

    with monkeypatch.context() as m:
        kill_after_first_epoch(m, "base")
        with pytest.raises(Killed):
            train_base(reg_b, r, "v1")
    assert unfinished_run(reg_b, "v1") == run_path(reg_b, "v1")
    assert reg_b.list_versions() == []
    ckpt = torch.load(run_path(reg_b, "v1") / "base" / LAST, weights_only=True)
    assert ckpt["epoch"] == 0 and ckpt["global_step"] == 3
    assert ckpt["optimizer_states"] and ckpt["lr_schedulers"]
    assert set(ckpt["callbacks"]["EpochCheckpoint"]["rng"]) >= {"python", "numpy", "torch"}
    assert ckpt["harmony"]["trainable"] == "all" and len(ckpt["harmony"]["history"]) == 1

    res = train_base(reg_b, r, "v1")  # the same name has an unfinished run: it resumes
    assert res.resumed
    assert_same_weights(reg_a, "v1", reg_b, "v1")
    assert_same_history(full.history, res.history)
    # finished: marked, checkpoints gone, so nothing resumes it; nothing written in the cwd
    assert (run_path(reg_b, "v1") / FINISHED).exists() and not list(run_path(reg_b, "v1").glob(f"*/{LAST}"))
    assert unfinished_run(reg_b, "v1") is None
    assert list(cwd.iterdir()) == []


def test_fit_without_a_run_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, history = fit_base(recipe_from_dict(MICRO))
    assert len(history) == 1 and model.dim == 16
    assert list(tmp_path.iterdir()) == []  # no ./checkpoints, no ./lightning_logs


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> Registry:
    """v1 and a wider v2-base, registered once for the harmonic resume tests."""
    reg = Registry.open(tmp_path_factory.mktemp("bases") / "registry")
    train_base(reg, recipe_from_dict(MICRO), "v1")
    big = {**MICRO, "model": {**MICRO["model"], "backbone_args": {"widths": [12, 24]}}}
    train_base(reg, recipe_from_dict(big), "v2-base")
    return reg


@pytest.mark.parametrize("stage", ["head", "all"])
def test_harmonic_resumes_within_and_across_stages(bases, monkeypatch, stage):
    """Killed in the head-only stage, or in the whole-net stage after the head stage finished."""
    reg = bases
    r = recipe_from_dict({**MICRO, **HARMONIC})
    full_name, resumed_name = f"v2-{stage}-full", f"v2-{stage}-resumed"
    full = train_harmonic(reg, r, full_name, "v1", "v2-base")
    assert len(full.history) == 4

    with monkeypatch.context() as m:
        kill_after_first_epoch(m, stage)
        with pytest.raises(Killed):
            train_harmonic(reg, r, resumed_name, "v1", "v2-base")
    run = run_path(reg, resumed_name)
    assert (run / stage / LAST).is_file() and not (run / FINISHED).exists()
    assert (run / "head" / LAST).is_file()  # for "all": the finished head stage is kept
    ckpt = torch.load(run / stage / LAST, weights_only=True)
    assert ckpt["harmony"]["trainable"] == stage and ckpt["epoch"] == 0

    res = train_harmonic(reg, r, resumed_name, "v1", "v2-base")
    assert res.resumed
    assert_same_weights(reg, full_name, reg, resumed_name)
    assert_same_history(full.history, res.history)
    assert res.compatible.keys() == full.compatible.keys()


def test_resuming_needs_the_same_recipe_and_versions(bases, monkeypatch):
    from harmony.errors import InvalidInput, NotFound

    reg = bases
    r = recipe_from_dict({**MICRO, **HARMONIC})
    with pytest.raises(NotFound, match="no unfinished training run"):
        train_harmonic(reg, r, "v2-x", "v1", "v2-base", resume=True)
    with monkeypatch.context() as m:
        kill_after_first_epoch(m, "head")
        with pytest.raises(Killed):
            train_harmonic(reg, r, "v2-x", "v1", "v2-base")
    with pytest.raises(InvalidInput, match="init"):
        train_harmonic(reg, r, "v2-x", "v1", None)
    with pytest.raises(InvalidInput, match="recipe"):
        train_harmonic(reg, r.override(seed=5), "v2-x", "v1", "v2-base")
    res = train_harmonic(reg, r, "v2-x", "v1", "v2-base", resume=False)  # starts over
    assert not res.resumed and len(res.history) == 4


def test_kill_9_a_cli_run_then_resume(tmp_path):
    """A real kill -9 of `harmony train base` after its first epoch, then `--resume`."""
    recipe = write_recipe(tmp_path / "long.yaml", train={"epochs": 8})  # 7 epochs left to land the kill in
    root = tmp_path / "registry"
    cmd = [sys.executable, "-m", "harmony", "train", "base", "--recipe", str(recipe), "--name", "v1", "--quiet",
           "--registry", str(root)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = root / "runs" / "v1" / "base" / LAST
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    reg = Registry.open(root)
    assert reg.list_versions() == [] and unfinished_run(reg, "v1") is not None

    r = CliRunner().invoke(app, [str(a) for a in cmd[3:]] + ["--resume"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "resuming the unfinished run" in r.output and "resumed" in r.output

    reg_full = Registry.open(tmp_path / "full")
    from harmony.recipe import load_recipe

    train_base(reg_full, load_recipe(recipe), "v1")
    assert_same_weights(reg_full, "v1", reg, "v1")
    assert not (tmp_path / "checkpoints").exists()
