"""The one FAR validator: (0, 1], numbers only, one wording wherever a FAR comes from."""

from __future__ import annotations

import numpy as np
import pytest

from harmony.errors import InvalidInput
from harmony.metrics.fars import DEFAULT_FARS, check_far, check_fars


def test_defaults_are_valid():
    assert check_fars(DEFAULT_FARS) == DEFAULT_FARS == (1e-2, 1e-3)


@pytest.mark.parametrize("far", [1e-3, 1, 1.0, np.float32(0.5), np.float64(1e-6)])
def test_accepts_numbers_in_range(far):
    assert check_far(far) == float(far) and type(check_far(far)) is float


@pytest.mark.parametrize("far", [0, 0.0, -1e-3, 1.5, float("nan"), float("inf"), True, "1e-3", None])
def test_refuses_the_rest(far):
    with pytest.raises(InvalidInput, match=r"outside \(0, 1\]"):
        check_far(far)


def test_names_the_source_and_dedupes():
    with pytest.raises(InvalidInput, match=r"--far 2 is outside \(0, 1\]"):
        check_fars([1e-3, 2], "--far")
    with pytest.raises(InvalidInput, match="no FAR"):
        check_fars([])
    assert check_fars([1e-3, 1e-2, 1e-3]) == (1e-3, 1e-2)
    assert check_fars([1e-3, 1e-3], unique=False) == (1e-3, 1e-3)
