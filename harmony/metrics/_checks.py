"""Input checks shared by the metric functions: one wording for every bad array.

Embeddings are ``(n, d)`` float32, L2-normalised. Violations that make a figure meaningless
(wrong shape, NaN) raise :class:`~harmony.errors.InvalidInput`; violations that only make it
suspicious (vectors off the unit sphere) warn with :class:`MetricsWarning`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from harmony.errors import InvalidInput

UNIT_NORM_TOL = 1e-3


class MetricsWarning(UserWarning):
    """A metric was computed, but its figure needs a caveat (non-unit vectors, zero false accepts)."""


def as_embeddings(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a C-contiguous ``(n, d)`` float32 array of finite values, or raise."""
    a = np.asarray(x)
    if a.ndim != 2:
        raise InvalidInput(f"{name} must be a 2-D (n, d) array, got shape {a.shape}",
                           hint="stack one embedding per row")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InvalidInput(f"{name} is empty (shape {a.shape})", hint="pass at least two embeddings")
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise InvalidInput(f"{name} must hold real numbers, got dtype {a.dtype}", hint="pass float32 embeddings")
    a = np.ascontiguousarray(a, dtype=np.float32)
    bad = ~np.isfinite(a)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise InvalidInput(f"{name} has NaN or inf in {rows.size} row(s), first at row {rows[0]}",
                           hint="drop or re-embed the broken images")
    return a


def as_labels(y: Any, n: int, name: str) -> np.ndarray:
    """Return labels as a 1-D array of length ``n`` (any hashable dtype), or raise."""
    lab = np.asarray(y)
    if lab.ndim != 1:
        raise InvalidInput(f"{name} must be 1-D, got shape {lab.shape}", hint="pass one label per embedding")
    if lab.shape[0] != n:
        raise InvalidInput(f"{name} has {lab.shape[0]} entries for {n} embeddings",
                           hint="pass one label per embedding, in the same order")
    return lab


def label_codes(*label_arrays: np.ndarray) -> list[np.ndarray]:
    """Map labels of one or more arrays to shared int64 codes (equal label <=> equal code)."""
    sizes = [len(a) for a in label_arrays]
    _, inv = np.unique(np.concatenate([np.asarray(a) for a in label_arrays]), return_inverse=True)
    inv = inv.astype(np.int64).reshape(-1)
    return list(np.split(inv, np.cumsum(sizes)[:-1]))


def warn_if_not_unit(x: np.ndarray, name: str, stacklevel: int = 3) -> None:
    """Warn when rows are not L2-normalised: 2 - 2 a.b is then not the squared L2 distance."""
    dev = np.abs(np.linalg.norm(x, axis=1) - 1.0)
    n_bad = int((dev > UNIT_NORM_TOL).sum())
    if n_bad:
        warnings.warn(f"{name}: {n_bad} of {len(x)} vectors are not unit-norm (max |norm - 1| = "
                      f"{dev.max():.3g}); distances 2 - 2 a.b are then not squared L2",
                      MetricsWarning, stacklevel=stacklevel)


def resolve_device(device: str | None) -> str:
    """``None``/"cpu" -> "cpu"; "auto" -> "cuda" when torch sees a GPU; "cuda[:i]" checked."""
    if device is None or device == "cpu":
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidInput(f"device {device!r} requested but torch sees no CUDA GPU",
                               hint="use device='auto' or 'cpu'")
        return str(device)
    raise InvalidInput(f"unknown device {device!r}", hint="use 'cpu', 'cuda', 'cuda:<i>' or 'auto'")
