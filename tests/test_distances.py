"""harmony.distances: both formulations of squared L2 against ||a - b||^2 in float64."""

from __future__ import annotations

import numpy as np
import torch

from harmony.distances import paired_sq_l2, pairwise_sq_l2, sq_l2_from_dots


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _naive(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def test_unit_rule_matches_naive_and_is_the_same_in_place_numpy_and_torch():
    a, b = _unit(40, 16, 0), _unit(30, 16, 1)
    g = a @ b.T
    d = sq_l2_from_dots(g)
    assert d.dtype == np.float32 and (d >= 0).all()
    np.testing.assert_allclose(d, _naive(a, b), atol=2e-6)
    same = sq_l2_from_dots(g.copy(), inplace=True)
    assert np.array_equal(same.view(np.int32), d.view(np.int32))  # equal bits
    t = sq_l2_from_dots(torch.from_numpy(g.copy()))
    assert np.array_equal(t.numpy(), d)
    assert np.array_equal(sq_l2_from_dots(torch.from_numpy(g.copy()), inplace=True).numpy(), d)
    assert sq_l2_from_dots(np.array([1.0000001], np.float32))[0] == 0.0  # clamped, never negative


def test_paired_is_the_diagonal():
    a, b = _unit(25, 8, 2), _unit(25, 8, 3)
    d = paired_sq_l2(a, b)
    assert d.dtype == np.float32 and d.shape == (25,)
    np.testing.assert_allclose(d, np.diag(_naive(a, b)), atol=2e-6)  # einsum and matmul sum in their own order


def test_pairwise_torch_matches_naive_for_any_vectors():
    a = torch.randn(12, 5, dtype=torch.float64) * 3
    b = torch.randn(7, 5, dtype=torch.float64)
    np.testing.assert_allclose(pairwise_sq_l2(a, b).numpy(), _naive(a.numpy(), b.numpy()), rtol=1e-10, atol=1e-10)
