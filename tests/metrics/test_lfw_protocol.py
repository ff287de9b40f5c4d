"""LFW pair readers on small files; the 10-fold protocol vs a brute-force threshold search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.metrics._metrics_twins import brute_val

from harmony.errors import InvalidInput, NotFound
from harmony.metrics import lfw_protocol, read_lfw_pairs, read_pairs_csv


def _touch(root: Path, name: str, num: int, ext: str = ".jpg") -> None:
    p = root / name / f"{name}_{num:04d}{ext}"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")


def test_reads_folds_and_reports_missing(tmp_path):
    root = tmp_path / "lfw"
    for name, num in [("Ann", 1), ("Ann", 2), ("Bob", 1), ("Bob", 3), ("Cy", 1)]:
        _touch(root, name, num)
    _touch(root, "Cy", 2, ".png")
    txt = tmp_path / "pairs.txt"
    txt.write_text("2\t2\nAnn\t1\t2\nBob\t1\t3\nAnn\t1\tBob\t1\nCy\t1\tBob\t3\n"
                   "Cy\t1\t2\nBob\t1\t9\nAnn\t2\tCy\t2\nDee\t1\tAnn\t1\n\n")
    ps = read_lfw_pairs(txt, root)
    assert ps.n_folds == 2 and len(ps.pairs) == 8
    assert ps.same.tolist() == [True, True, False, False] * 2
    assert ps.folds.tolist() == [0] * 4 + [1] * 4
    assert ps.pairs[0].path_a == root / "Ann" / "Ann_0001.jpg"
    assert ps.pairs[4].path_b == root / "Cy" / "Cy_0002.png"
    assert ps.missing == (root / "Bob" / "Bob_0009.jpg", root / "Dee" / "Dee_0001.jpg")
    assert ps.pairs[5].path_b == root / "Bob" / "Bob_0009.jpg"  # kept, not dropped


def test_dev_train_single_header(tmp_path):
    txt = tmp_path / "pairsDevTrain.txt"
    txt.write_text("2\nAnn 1 2\nBob 1 2\nAnn 1 Bob 2\nBob 1 Ann 2\n")
    ps = read_lfw_pairs(txt, tmp_path)
    assert ps.n_folds == 1 and ps.same.tolist() == [True, True, False, False]
    assert len(ps.missing) == 4


@pytest.mark.parametrize("text, match", [
    ("1 2\nAnn 1 2\nAnn 1 3\nAnn 1 Bob 1\n", "promises"),
    ("1 1\nAnn 1\nAnn 1 Bob 1\n", "matched pair needs"),
    ("1 1\nAnn 1 2\nAnn 1 Bob\n", "mismatched pair needs"),
    ("1 1\nAnn one 2\nAnn 1 Bob 1\n", "integer"),
    ("1 2 3\n", "header"),
    ("", "empty"),
])
def test_malformed_pairs_txt(tmp_path, text, match):
    txt = tmp_path / "pairs.txt"
    txt.write_text(text)
    with pytest.raises(InvalidInput, match=match):
        read_lfw_pairs(txt, tmp_path)


def test_missing_pairs_file(tmp_path):
    with pytest.raises(NotFound):
        read_lfw_pairs(tmp_path / "nope.txt", tmp_path)


def test_pairs_csv_round_robin(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    rows = "\n".join(f"a.jpg,b{i}.jpg,{'1' if i % 2 else 'false'}" for i in range(23))
    csv = tmp_path / "pairs.csv"
    csv.write_text("path_a,path_b,same\n" + rows + "\n")
    ps = read_pairs_csv(csv)
    assert ps.folds.tolist() == [i % 10 for i in range(23)] and ps.n_folds == 10
    assert ps.same.tolist() == [bool(i % 2) for i in range(23)]
    assert ps.pairs[0].path_a == tmp_path / "a.jpg"
    assert ps.missing == tuple(sorted(tmp_path / f"b{i}.jpg" for i in range(23)))
    assert read_pairs_csv(csv).pairs == ps.pairs  # deterministic


@pytest.mark.parametrize("text, match", [("a,b,same\nx,y,1\n", "header"), ("path_a,path_b,same\nx,y,maybe\n", "same must")])
def test_pairs_csv_errors(tmp_path, text, match):
    csv = tmp_path / "p.csv"
    csv.write_text(text)
    with pytest.raises(InvalidInput, match=match):
        read_pairs_csv(csv)


def brute_best_threshold(d, s):
    u = sorted(set(d.tolist()))
    cands = [u[0]] + [(a + b) / 2 for a, b in zip(u, u[1:])] + [np.nextafter(u[-1], np.inf)]
    best_t, best_c = None, -1
    for t in cands:
        c = sum(1 for x, y in zip(d, s) if (x < t) == y)
        if c > best_c:
            best_t, best_c = t, c
    return best_t


@pytest.mark.parametrize("seed", [0, 1])
def test_protocol_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 400
    same = rng.random(n) < 0.5
    d = np.where(same, rng.normal(0.8, 0.3, n), rng.normal(1.6, 0.3, n)).astype(np.float32).clip(0, 4)
    d[:20] = d[20:40]  # ties
    folds = np.arange(n) % 10
    res = lfw_protocol(d, same, folds)
    for k in range(10):
        train, test = folds != k, folds == k
        t = brute_best_threshold(d[train].astype(np.float64), same[train])
        assert res.thresholds[k] == t
        assert res.fold_accuracies[k] == np.mean((d[test] < t) == same[test])
    assert res.accuracy_mean == np.mean(res.fold_accuracies)
    assert res.accuracy_std == np.sqrt(np.mean((np.array(res.fold_accuracies) - res.accuracy_mean) ** 2))
    val, t, *_ = brute_val(d[same].tolist(), d[~same].tolist(), 1e-3)
    assert (res.val.val, res.val.threshold) == (val, t)
    json.dumps(res.as_dict(), allow_nan=False)
    assert "+-" in str(res)


def test_separable_pairs_score_perfectly():
    same = np.arange(200) % 2 == 0
    d = np.where(same, 0.5, 1.5) + np.linspace(0, 0.1, 200)
    res = lfw_protocol(d, same, np.arange(200) % 10)
    assert res.accuracy_mean == 1.0 and res.accuracy_std == 0.0
    assert all(0.6 < t < 1.5 for t in res.thresholds)


@pytest.mark.parametrize("kwargs, match", [
    (dict(folds=np.zeros(10)), "at least 2 folds"),
    (dict(same=np.ones(10, bool)), "both matched"),
    (dict(distances=np.full(10, np.nan)), "NaN"),
    (dict(distances=np.ones(9)), "one length"),
    (dict(same=np.arange(10)), "boolean"),
])
def test_protocol_errors(kwargs, match):
    base = dict(distances=np.linspace(0, 2, 10), same=np.arange(10) < 5, folds=np.arange(10) % 2)
    base.update(kwargs)
    with pytest.raises(InvalidInput, match=match):
        lfw_protocol(**base)
