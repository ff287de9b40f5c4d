"""Item 5, training: a failed run leaves no runs/ folder (nothing to resume) or one marked FAILED
that --resume continues; the version row and its evaluation commit together."""

from __future__ import annotations

import pytest

import harmony.training.base as base
from harmony.recipe import load_recipe
from harmony.scratch import leftovers
from harmony.training.runs import FAILED, run_path
from tests.conftest import write_recipe


def test_failure_before_a_checkpoint_leaves_no_run_folder(reg, tmp_path, monkeypatch):
    recipe = load_recipe(write_recipe(tmp_path / "micro.yaml"))

    def boom(*a, **k):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(base, "fit_base", boom)
    with pytest.raises(RuntimeError):
        base.train_base(reg, recipe, "v1")
    assert not run_path(reg, "v1").exists() and reg.list_versions() == []
    assert leftovers(reg.root) == []


def test_failure_after_training_is_marked_and_resumable(reg, tmp_path, monkeypatch):
    recipe = load_recipe(write_recipe(tmp_path / "micro.yaml"))
    with monkeypatch.context() as m:
        def boom(*a, **k):
            raise RuntimeError("evaluation died (simulated)")

        m.setattr(base, "evaluate_held_out", boom)
        with pytest.raises(RuntimeError):
            base.train_base(reg, recipe, "v1")
    folder = run_path(reg, "v1")
    assert "evaluation died" in (folder / FAILED).read_text()
    assert reg.list_versions() == [] and leftovers(reg.root) == []
    res = base.train_base(reg, recipe, "v1")  # resumes the marked run
    assert res.resumed and not (folder / FAILED).exists()
    evals = reg.evaluations("v1")
    assert len(evals) == 1 and evals[0]["dataset"] == res.eval_set
