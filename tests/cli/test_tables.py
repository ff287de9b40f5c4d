"""The CLI's tables of the metric records: headers, rows and captions come from the records."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from rich.console import Console

from harmony.cli.tables import (compat_table, flips_table, gain, identification_table, split_identification_table,
                                top1_line)
from harmony.metrics import MetricsWarning, compatibility_report, flip_report, identification_report
from tests.metrics._metrics_twins import exact_embeddings


@pytest.fixture(scope="module")
def versions():
    old, lab = exact_embeddings(30, 5, seed=10)
    rng = np.random.default_rng(0)
    new = old * np.where(rng.random(old.shape) < 0.1, -1.0, 1.0).astype(np.float32)
    return old, new, lab


def _text(table) -> str:
    con = Console(record=True, width=120)
    con.print(table)
    return con.export_text()


def test_compat_table(versions):
    old, new, lab = versions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricsWarning)
        rep = compatibility_report(old, new, lab, (1e-2, 1.0))
    table = compat_table(rep)
    assert [c.header for c in table.columns] == ["FAR", "VAL(v1,v1)", "VAL(v2,v2)", "VAL(v2->v1)",
                                                 "VAL(v1->v2)", "compatible", "gain recovered"]
    assert "compatible" in _text(table)
    assert table.row_count == len(rep.rows)
    assert compat_table(rep, "mine").title == "mine"


def test_identification_tables(versions):
    old, new, lab = versions
    rep = identification_report(old, new, lab, gallery_per_identity=1, ks=(1, 5))
    assert split_identification_table(rep).row_count == 3
    t = identification_table("loo", [("v1", {1: 0.5, 5: 0.75}), ("v2", {1: 1.0, 5: 1.0})], first="version")
    assert [c.header for c in t.columns] == ["version", "top-1", "top-5"]
    assert "75.00%" in _text(t)


def test_gain_cells():
    assert gain(None) == "undefined" and gain(0.0812) == "0.08" and gain(-0.5) == "-0.50"


def test_top1_line_and_flips_table(versions):
    old, new, lab = versions
    ident = identification_report(old, new, lab, gallery_per_identity=1, ks=(1, 5))
    line = top1_line(ident)
    assert line == top1_line(ident.as_dict())  # a report or its stored dict, one rendering
    assert ("at least as well" in line) == ident.compatible and line.startswith("top-1 identification v2->v1")
    flips = flip_report(old, old[::-1].copy(), lab)  # new = unrelated vectors: most old hits flip
    d = flips.as_dict()
    t = flips_table(d, all_in="`x --json`")
    text = " ".join(_text(t).split())
    assert t.row_count == 2 and "every id in `x --json`" in text
    assert f"{d['cross_flips']['n_flips']}" in text and str(d["cross_flips"]["ids"][0]) in text
    assert d["cross_flips"]["n_flips"] > 5 and f"(+{d['cross_flips']['n_flips'] - 5} more)" in text
