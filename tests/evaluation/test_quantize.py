"""`harmony eval --quantize int8`: one byte per dimension, the float32 row equal to `harmony eval`'s
own figures, VAL kept on separable embeddings, and the CLI's rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from harmony.cli.main import app
from harmony.data.sources import ArraySource
from harmony.errors import InvalidInput
from harmony.evaluation import (
    LabelledSet,
    embed_cached,
    evaluate,
    lfw_pairs_set,
    synthetic_set,
)
from harmony.evaluation.cache import Embedded
from harmony.evaluation.quantize import check_scheme, int8_codes, quantize_report
from harmony.models.pipeline import Embeddings
from tests.evaluation.test_evaluate import lfw_fixture

FARS = (0.1, 0.01)
runner = CliRunner()


def clustered(n_ids=40, per=5, dim=32, spread=0.35, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, dim))
    x = np.repeat(centres, per, 0) + spread * rng.standard_normal((n_ids * per, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), np.repeat(np.arange(n_ids), per)


def test_one_byte_per_dimension_within_half_a_level():
    x, _ = clustered()
    q = int8_codes(x)
    assert q.codes.dtype == np.uint8 and q.codes.shape == x.shape and q.bytes_per_vector == 32
    step = (x.max(0) - x.min(0)) / 255  # per-dimension scale: each dimension its own range
    assert (np.abs(q.decoded - x) <= step / 2 + 1e-6).all()
    assert len(np.unique(q.codes[:, 0])) > 100  # the range is used, not a fixed [-1, 1] grid


def test_int8_keeps_val_on_separable_embeddings():
    x, labels = clustered()
    emb = Embedded(Embeddings(x, np.ones(len(x), bool)), 0, False, None)  # type: ignore[arg-type]
    images = np.zeros((len(x), 2, 2, 3), np.uint8)
    rep = quantize_report(LabelledSet(ArraySource.of(images), labels, "t"), {"v": emb}, FARS)
    assert [r.far for r in rep.rows] == list(FARS) and rep.bytes_int8 == {"v": 32} and rep.bytes_float32 == {"v": 128}
    for r in rep.rows:
        assert abs(r.delta) <= 0.01, r
    assert 0 < rep.norm_drift["v"] < 0.01


def test_float32_rows_equal_evaluate(reg, add_tiny, tmp_path):
    add_tiny("v1")
    add_tiny("v2", seed=1)
    data = synthetic_set(6, 3)
    res = evaluate(reg, "v2", "v1", data, fars=FARS)
    embedded = {v.name: embed_cached(reg, v.name, data.source) for v in res.versions}
    rep = quantize_report(data, embedded, FARS)
    assert [(r.version, r.far) for r in rep.rows] == [("v2", 0.1), ("v2", 0.01), ("v1", 0.1), ("v1", 0.01)]
    for v in res.versions:
        assert [r.float32.val for r in rep.rows if r.version == v.name] == [x.val for x in v.val]
    root, pairs = lfw_fixture(tmp_path)
    ps = lfw_pairs_set(pairs, root)
    res = evaluate(reg, "v1", data=ps, fars=FARS)
    rep = quantize_report(ps, {"v1": embed_cached(reg, "v1", ps.source)}, FARS)
    assert [r.float32.val for r in rep.rows] == [x.val for x in res.versions[0].val]


def test_cli_rows_and_bad_scheme(reg, add_tiny):
    add_tiny("v1")
    args = ["eval", "--version", "v1", "--synthetic", 5, "--per-identity", 3, "--far", 0.1, "--registry", reg.root]
    r = runner.invoke(app, [*map(str, args), "--quantize", "int8", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    q = json.loads(r.stdout)["quantize"]
    assert q["scheme"] == "int8" and q["bytes_int8"] == {"v1": 16} and len(q["rows"]) == 1
    row = q["rows"][0]
    assert row["float32"] == json.loads(r.stdout)["versions"][0]["val"][0]["val"]
    assert row["delta"] == pytest.approx(row["int8"] - row["float32"])
    r = runner.invoke(app, [*map(str, args), "--quantize", "int8"], catch_exceptions=False, terminal_width=200)
    assert r.exit_code == 0 and "one byte per dimension" in r.output and "int8 - float32" in r.output
    r = runner.invoke(app, [*map(str, args), "--quantize", "int4"], catch_exceptions=False)
    assert r.exit_code == 2 and "int4" in r.output
    with pytest.raises(InvalidInput):
        check_scheme("fp16")
