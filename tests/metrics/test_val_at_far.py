"""val_at_far against explicit pair enumeration (exact data: bit-for-bit equality)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from tests.metrics._metrics_twins import brute_pairs, brute_val, exact_embeddings, random_embeddings

from harmony.errors import InvalidInput
from harmony.metrics import MetricsWarning, ValAtFar, val_at_far, val_far_curve
from harmony.metrics import _blocked
from harmony.metrics.val_at_far import _val_at_far_from_pairs, far_to_k

FARS = [1e-4, 1e-3, 0.01, 0.05, 0.3, 0.999, 1.0]  # 1e-4: f * n_diff < 1; 1.0: k >= n_diff
SMALL = [1e-4, 1e-3, 0.01, 0.02]  # the largest target sets how much is kept: small ones prune early


@pytest.fixture(scope="module")
def exact():
    # 25 identities x 5 images; duplicate vectors across identities create zero-distance diff pairs
    emb, lab = exact_embeddings(25, 5, seed=3)
    emb[7] = emb[60]
    emb[8] = emb[61]
    return emb, lab


@pytest.fixture(scope="module")
def exact_pairs(exact):
    return brute_pairs(*exact)


@pytest.fixture(scope="module")
def exact_cross(exact):
    emb, lab = exact
    other, _ = exact_embeddings(25, 5, seed=4)
    return emb, other, lab


@pytest.fixture(scope="module")
def exact_cross_pairs(exact_cross):
    a, b, lab = exact_cross
    return brute_pairs(a, lab, gallery=b)


def _eager(monkeypatch):
    """Re-select the kept distances after every tile, so the pruning bound is always tight."""
    monkeypatch.setattr(_blocked, "REDUCE_SLACK", 0)
    monkeypatch.setattr(_blocked, "REDUCE_GROWTH", 0.0)


# (block size, kept-distance limit, re-selection): one block; tiles; tiles with the bound
# tightening after every tile; histogram mode (limit 3) with and without eager re-selection
SCAN_MODES = [(4096, None, "default"), (16, None, "default"), (7, None, "eager"), (16, 3, "default"),
              (7, 3, "eager")]


@pytest.fixture(params=SCAN_MODES, ids=lambda p: f"block{p[0]}-kept{p[1] or 'max'}-{p[2]}")
def scan_mode(request, monkeypatch):
    block, max_kept, slack = request.param
    if max_kept is not None:
        monkeypatch.setattr(_blocked, "MAX_KEPT", max_kept)
    if slack == "eager":
        _eager(monkeypatch)
    return block


def _check(got: ValAtFar, same, diff, far):
    val, t, afar, ta, fa = brute_val(same, diff, far)
    assert (got.val, got.threshold, got.achieved_far) == (val, t, afar)
    assert (got.n_true_accepts, got.n_false_accepts) == (ta, fa)
    assert (got.n_same, got.n_diff) == (len(same), len(diff))
    assert got.achieved_far <= far
    assert got.zero_false_accepts == (far * len(diff) < 1)


def _quiet(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricsWarning)
        return val_at_far(*args, **kw)


@pytest.mark.parametrize("fars", [FARS, SMALL])
def test_one_set_matches_brute_force(fars, exact, exact_pairs, scan_mode):
    emb, lab = exact
    got = _quiet(emb, lab, fars, block_size=scan_mode)
    for g, f in zip(got, fars):
        _check(g, *exact_pairs, f)


@pytest.mark.parametrize("fars", [FARS, SMALL])
def test_cross_version_matches_brute_force(fars, exact_cross, exact_cross_pairs, scan_mode):
    a, b, lab = exact_cross
    assert len(exact_cross_pairs[0]) == 25 * 5 * 4  # ordered pairs i != j, the same image is not a pair
    got = _quiet(a, lab, fars, gallery=b, block_size=scan_mode)
    for g, f in zip(got, fars):
        _check(g, *exact_cross_pairs, f)


def test_ties_at_threshold_are_rejected():
    v = np.eye(4, dtype=np.float32)
    emb = np.stack([v[0], v[0], v[0], v[1]])  # same pair (0,1) at D=0; diff pairs (0,2), (1,2) at D=0
    lab = np.array([0, 0, 1, 1])
    r = _quiet(emb, lab, 0.2)  # n_diff = 4, k = 0, t* = 0
    assert (r.threshold, r.val, r.n_false_accepts) == (0.0, 0.0, 0)
    r = _quiet(emb, lab, 0.5)  # k = 2: t* = third smallest diff distance = 2.0
    assert (r.threshold, r.n_false_accepts, r.val) == (2.0, 2, 1 / 2)


def test_heavy_ties_match_brute_force():
    emb, lab = exact_embeddings(12, 6, seed=5, d=4)  # d=4: few distinct distances, ties everywhere
    same, diff = brute_pairs(emb, lab)
    for g, f in zip(_quiet(emb, lab, FARS, block_size=5), FARS):
        _check(g, same, diff, f)


def test_multi_far_equals_single_calls(exact):
    emb, lab = exact
    assert _quiet(emb, lab, FARS) == [_quiet(emb, lab, f) for f in FARS]


def test_identical_gallery_gives_one_set_figures(exact):
    emb, lab = exact
    one, cross = _quiet(emb, lab, FARS), _quiet(emb, lab, FARS, gallery=emb.copy())
    assert [(r.val, r.threshold) for r in one] == [(r.val, r.threshold) for r in cross]


def test_cross_symmetry(exact_cross):
    a, b, lab = exact_cross
    assert [(r.val, r.threshold) for r in _quiet(a, lab, FARS, gallery=b)] == \
        [(r.val, r.threshold) for r in _quiet(b, lab, FARS, gallery=a)]


@pytest.mark.parametrize("n_ids, block, max_kept", [(40, 50, None), (80, 20, None), (40, 30, 3)])
@pytest.mark.parametrize("fars", [FARS, SMALL])
def test_random_data_matches_float32_twin(fars, n_ids, block, max_kept, monkeypatch):
    """(80, 20): 300+ tiles, mostly pruned on the bound; max_kept=3: histogram mode."""
    _eager(monkeypatch)  # the bound tightens after every tile
    if max_kept is not None:
        monkeypatch.setattr(_blocked, "MAX_KEPT", max_kept)
    emb, lab = random_embeddings(n_ids, 6, seed=0)
    d = np.maximum(np.float32(2) - np.float32(2) * (emb @ emb.T), np.float32(0))
    iu = np.triu_indices(len(lab), 1)
    s = lab[iu[0]] == lab[iu[1]]
    same, diff = d[iu][s].tolist(), d[iu][~s].tolist()
    for g, f in zip(_quiet(emb, lab, fars, block_size=block), fars):
        val, t, afar, _, _ = brute_val(same, diff, f)
        assert g.val == val and g.achieved_far == afar
        assert g.threshold == pytest.approx(t, rel=1e-6, abs=1e-6)


def test_window_keeps_every_same_pair_below_the_final_bound(monkeypatch):
    """Smallest mode: the window holds every same-pair distance below its largest kept value."""
    _eager(monkeypatch)
    emb, lab = random_embeddings(100, 6, seed=7, noise=1.2)
    d = np.maximum(np.float32(2) - np.float32(2) * (emb @ emb.T), np.float32(0))
    iu = np.triu_indices(len(lab), 1)
    same_d = d[iu][lab[iu[0]] == lab[iu[1]]]
    (win, _), = _blocked.scan_pairs(emb, None, lab.astype(np.int64), [3000], block_size=25, device="cpu")
    tau = win.diff_d[-1]
    assert win.diff_d.size == 3001
    assert np.sort(win.same_d[win.same_d < tau]).tolist() == pytest.approx(np.sort(same_d[same_d < tau]).tolist())


def test_torch_elementwise_path_matches_numpy(exact_cross, monkeypatch):
    """The GPU code path (torch element-wise ops), run on CPU tensors."""
    a, b, lab = exact_cross
    codes = lab.astype(np.int64)
    for max_kept in (_blocked.MAX_KEPT, 3):
        monkeypatch.setattr(_blocked, "MAX_KEPT", max_kept)
        for gal in (None, b):
            ks = [0, 5, 400]
            w_np = _blocked.scan_pairs(a, gal, codes, ks, block_size=16, device="cpu")
            w_t = _blocked.scan_pairs(a, gal, codes, ks, block_size=16, device="cpu", elementwise="torch")
            for (x, px), (y, py) in zip(w_np, w_t):
                assert px == py
                assert np.array_equal(np.sort(x.same_d), np.sort(y.same_d))
                assert np.array_equal(x.diff_d, y.diff_d)
                assert (x.same_below, x.diff_below) == (y.same_below, y.diff_below)


def test_dot_bound_keeps_every_candidate():
    """Pruning on dot products never drops a pair whose float32 distance is below tau."""
    for tau in [0.0, 1e-7, 0.05, 0.5, 0.9999, 1.0, 1.3, 2.0, 3.7, 4.0]:
        g0 = np.float32(1 - tau / 2)
        g = (np.float64(g0) + 1e-8 * np.arange(-20000, 20001)).astype(np.float32)  # every float32 near g0
        g = g[np.abs(g) <= 1]
        d = np.maximum(np.float32(2) - np.float32(2) * g, np.float32(0))
        below = d < np.float32(tau)
        assert below.any() or tau == 0.0
        assert np.all(g[below] > np.float32(_blocked.dot_bound(tau))), tau


def test_zero_false_accepts_warns(exact):
    emb, lab = exact
    with pytest.warns(MetricsWarning, match="zero false accepts"):
        r = val_at_far(emb, lab, 1e-5)
    assert r.zero_false_accepts and r.n_false_accepts == 0


def test_far_to_k_uses_the_written_decimal():
    assert far_to_k(0.29, 100) == 29  # 0.29 * 100 == 28.999999999999996 in binary floats
    assert far_to_k(1e-3, 999) == 0 and far_to_k(1e-3, 1000) == 1
    assert far_to_k(1.0, 7) == 7


def test_explicit_pairs_rule_windowed_equals_plain():
    rng = np.random.default_rng(2)
    same, diff = rng.random(50).astype(np.float32), rng.random(400).astype(np.float32)
    plain = _val_at_far_from_pairs(same, diff, [0.01, 0.1])
    lo = np.sort(diff)[2]  # window [lo, inf): counts below lo are passed in instead
    win = _val_at_far_from_pairs(same[same >= lo], diff[diff >= lo], [0.01, 0.1], n_same=50, n_diff=400,
                                 same_below=int((same < lo).sum()), diff_below=2)
    assert plain == win


def test_string_labels(exact):
    emb, lab = exact
    names = np.array([f"person_{i}" for i in lab])
    assert _quiet(emb, names, FARS) == _quiet(emb, lab, FARS)


def test_curve_is_val_at_far_pointwise(exact):
    emb, lab = exact
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricsWarning)
        fars, vals = val_far_curve(emb, lab)
        assert fars.shape == (31,) and fars[0] == 1e-5 and fars[-1] == 1.0
        assert 1e-3 in fars.tolist() and 1e-2 in fars.tolist()
        assert np.all(np.diff(vals) >= 0) and vals[-1] == 1.0
        assert vals.tolist() == [r.val for r in val_at_far(emb, lab, list(fars))]


def test_as_dict_is_json(exact):
    emb, lab = exact
    d = [r.as_dict() for r in _quiet(emb, lab, [1e-3, 1.0])]
    assert d[1]["threshold"] is None and math.isfinite(d[0]["threshold"])
    json.dumps(d, allow_nan=False)


def test_non_unit_vectors_warn(exact):
    emb, lab = exact
    with pytest.warns(MetricsWarning, match="not unit-norm"):
        _quiet_unit = val_at_far(emb * 1.01, lab, 0.01)
    assert _quiet_unit.n_same == 25 * 10


@pytest.mark.parametrize("kwargs, match", [
    (dict(probe=np.zeros(5, np.float32)), "2-D"),
    (dict(probe_labels=np.zeros(7)), "entries for"),
    (dict(far=0.0), "outside"),
    (dict(far=1.5), "outside"),
    (dict(far=float("nan")), "outside"),
    (dict(far=[]), "no FAR"),
    (dict(probe_labels=np.arange(6)), "no same-identity"),
    (dict(probe_labels=np.zeros(6)), "no different-identity"),
    (dict(gallery=np.ones((6, 3), np.float32)), "differs from probe shape"),
    (dict(gallery=np.ones((5, 4), np.float32)), "differs from probe shape"),
    (dict(gallery_labels=np.array([0, 0, 0, 1, 1, 2])), "gallery_labels differ"),
    (dict(block_size=0), "block_size"),
    (dict(device="tpu"), "unknown device"),
])
def test_invalid_input(kwargs, match):
    base = dict(probe=np.eye(6, 4, dtype=np.float32) + 0.0, probe_labels=np.array([0, 0, 1, 1, 2, 2]),
                far=1e-3, gallery=None, gallery_labels=None)
    base["probe"][4:] = np.eye(4, dtype=np.float32)[:2]
    if "gallery_labels" in kwargs:
        base["gallery"] = base["probe"]
    base.update(kwargs)
    with pytest.raises(InvalidInput, match=match):
        _quiet(base.pop("probe"), base.pop("probe_labels"), base.pop("far"), **base)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_rejected(exact, bad):
    emb, lab = exact
    e = emb.copy()
    e[3, 1] = bad
    with pytest.raises(InvalidInput, match="NaN or inf"):
        val_at_far(e, lab)
    with pytest.raises(InvalidInput, match="NaN or inf"):
        val_at_far(emb, lab, gallery=e)


def test_full_precision_matmul_whatever_the_caller_set(exact):
    torch = pytest.importorskip("torch")
    want = _quiet(*exact, FARS)
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        assert _quiet(*exact, FARS) == want
        assert torch.get_float32_matmul_precision() == "medium"  # restored afterwards
    finally:
        torch.set_float32_matmul_precision(before)


def test_cuda_without_gpu_is_an_error(exact):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InvalidInput, match="no CUDA"):
        val_at_far(*exact, device="cuda")


@pytest.mark.gpu
def test_gpu_matches_cpu(exact_cross, monkeypatch):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    a, b, lab = exact_cross
    for max_kept in (_blocked.MAX_KEPT, 3):
        monkeypatch.setattr(_blocked, "MAX_KEPT", max_kept)
        for gal in (None, b):
            assert _quiet(a, lab, FARS, gallery=gal, device="cuda", block_size=16) == \
                _quiet(a, lab, FARS, gallery=gal, block_size=16)
