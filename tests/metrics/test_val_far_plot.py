"""plot_val_far writes a real PNG atomically."""

from __future__ import annotations

import numpy as np
import pytest

from harmony.errors import InvalidInput
from harmony.metrics import plot_val_far


def test_writes_png(tmp_path):
    f = np.logspace(-5, 0, 31)
    curves = {"v1,v1": (f, np.sqrt(f) ** 0.3), "v2->v1": (f, f ** 0.2)}
    out = plot_val_far(curves, tmp_path / "sub" / "val_far.png", title="test")
    data = out.read_bytes()
    assert out == tmp_path / "sub" / "val_far.png"
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert [p.name for p in out.parent.iterdir()] == ["val_far.png"]  # no temp file left


@pytest.mark.parametrize("curves", [{}, {"x": (np.array([0.0, 1.0]), np.array([0.1, 0.2]))},
                                    {"x": (np.array([0.1, 1.0]), np.array([0.1]))}])
def test_rejects_bad_curves(tmp_path, curves):
    with pytest.raises(InvalidInput):
        plot_val_far(curves, tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_marked_values_interpolate_in_log_far():
    from harmony.metrics.plots import vals_at_marks

    f = np.array([1e-4, 1e-2, 1.0])
    v = np.array([0.2, 0.6, 1.0])  # linear in log10(FAR): 1e-3 sits halfway between the first two points
    assert vals_at_marks(f, v) == pytest.approx({1e-3: 0.4, 1e-2: 0.6})
    assert vals_at_marks(np.array([1e-2, 1.0]), np.array([0.5, 1.0])) == {1e-2: 0.5}  # 1e-3 is out of range
