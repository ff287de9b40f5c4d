"""Item 6: a malformed recipe is refused with one line and exit 2, before any work is done."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harmony.cli.train import app
from tests.conftest import MICRO

runner = CliRunner()


def recipe(tmp_path: Path, **changes) -> Path:
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in MICRO.items()}
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        raw[section] = {**raw[section], key: value}
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


BAD = [
    ({"model__backbone_args": {"widths": [8, 16], "bogus": 1}}, "model.backbone_args"),
    ({"model__backbone_args": {"widths": [-4, 16]}}, "model.backbone_args"),
    ({"model__dropout": 5}, "model.dropout"),
    ({"eval__batch_size": 0}, "eval.batch_size"),
    ({"train__weight_decay": -1}, "train.weight_decay"),
    ({"model__dim": 1_000_000_000}, "model.dim"),
    ({"model__dim": "1e9"}, "model.dim"),
    ({"train__k": 9}, "train.k"),
    ({"train__momentum": 1.5}, "train.momentum"),
]


@pytest.mark.parametrize("changes,key", BAD, ids=[k for _, k in BAD])
def test_bad_values_fail_with_the_key(tmp_path, changes, key):
    res = runner.invoke(app, ["base", "--recipe", str(recipe(tmp_path, **changes)), "--name", "x",
                              "--registry", str(tmp_path / "reg")])
    assert res.exit_code == 2, res.output
    assert key in res.output and "Traceback" not in res.output
    assert not (tmp_path / "reg" / "runs").exists()


def test_latin1_empty_and_sectionless_recipes(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\ndata: {}\n".encode("latin-1"))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    nomodel = tmp_path / "nomodel.yaml"
    nomodel.write_text(yaml.safe_dump({k: v for k, v in MICRO.items() if k != "model"}))
    for path, says in ((latin, "UTF-8"), (empty, "empty"), (nomodel, "'model'")):
        res = runner.invoke(app, ["base", "--recipe", str(path), "--name", "x", "--registry", str(tmp_path / "reg")])
        assert res.exit_code == 2 and says in res.output and "Traceback" not in res.output, res.output


def test_k_above_images_per_identity_warns(caplog):
    import logging

    import numpy as np

    from harmony.data.sampler import PKBatchSampler

    labels = np.repeat(np.arange(6), [2, 2, 8, 8, 8, 8])
    with caplog.at_level(logging.WARNING, logger="harmony.data.sampler"):
        s = PKBatchSampler(labels, p=2, k=4, steps=1)
    assert s.n_short == 2 and "train.k = 4 but 2 of 6 identities" in caplog.text
