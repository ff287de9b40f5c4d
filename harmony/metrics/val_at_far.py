"""VAL@FAR exactly as DESIGN section 2 defines it, over all pairs, in bounded memory.

Rule (one implementation, :func:`_val_at_far_from_pairs`): with ``n_diff`` different-identity
pairs, ``k = floor(f * n_diff)`` and ``t*`` = the (k+1)-th smallest different-pair distance; a
pair is accepted when ``D < t*``. Ties at ``t*`` are rejected, so the achieved FAR is at most
``f`` and ``t*`` is the largest threshold that keeps it so. If ``k >= n_diff`` every pair is
accepted (``t* = +inf``). When ``f * n_diff < 1`` (``k == 0``) the figure rests on zero false
accepts: ``t*`` is the smallest different-pair distance.

``k`` is computed from the decimal the float prints as (``repr``), so ``f = 0.29`` with
``n_diff = 100`` gives ``k = 29`` as written, not 28 from the binary rounding of 0.29.

Distances are squared L2 for unit vectors, ``max(2 - 2 a.b, 0)`` in float32 (harmony.distances).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from harmony.errors import InvalidInput
from harmony.metrics import _blocked
from harmony.metrics.fars import check_fars
from harmony.metrics._checks import (MetricsWarning, as_embeddings, as_labels, label_codes,
                                     resolve_device, warn_if_not_unit)

# np.logspace(-5, 0, 31) rounded to 12 digits, so that 1e-3 and 1e-2 are exactly those decimals
DEFAULT_CURVE_FARS = np.array([float(f"{f:.12g}") for f in np.logspace(-5, 0, 31)])


@dataclass(frozen=True)
class ValAtFar:
    """One operating point. ``threshold`` is t* (accept ``D < threshold``); +inf accepts all."""

    far: float
    val: float
    threshold: float
    achieved_far: float
    n_same: int
    n_diff: int
    n_true_accepts: int
    n_false_accepts: int
    zero_false_accepts: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-able dict; ``threshold`` is None when every pair is accepted (t* = +inf)."""
        d = asdict(self)
        if math.isinf(self.threshold):
            d["threshold"] = None
        return d


def far_to_k(far: float, n_diff: int) -> int:
    """``floor(far * n_diff)`` in exact arithmetic on the decimal ``far`` prints as."""
    return math.floor(Fraction(repr(float(far))) * n_diff)


def _val_at_far_from_pairs(same_d: np.ndarray, diff_d: np.ndarray, fars: Sequence[float], *,
                           n_same: int | None = None, n_diff: int | None = None,
                           same_below: int = 0, diff_below: int = 0) -> list[ValAtFar]:
    """The threshold rule, on explicit pair distances.

    Plain use: ``same_d``/``diff_d`` hold every same/different-pair distance. Windowed use (the
    blocked scans): they hold every distance of a value range containing each t*, and
    ``same_below``/``diff_below`` count the pairs below that range; ``n_same``/``n_diff`` are the
    totals.
    """
    same_sorted = np.sort(np.asarray(same_d).reshape(-1))
    diff_sorted = np.sort(np.asarray(diff_d).reshape(-1))
    n_same = same_below + same_sorted.size if n_same is None else int(n_same)
    n_diff = diff_below + diff_sorted.size if n_diff is None else int(n_diff)
    out = []
    for f in fars:
        k = far_to_k(f, n_diff)
        if k >= n_diff:
            t, ta, fa = math.inf, n_same, n_diff
        else:
            j = k - diff_below
            if not 0 <= j < diff_sorted.size:
                raise RuntimeError(f"internal: t* for k={k} lies outside the distances given")
            t = float(diff_sorted[j])
            fa = diff_below + int(np.searchsorted(diff_sorted, diff_sorted[j], side="left"))
            ta = same_below + int(np.searchsorted(same_sorted, diff_sorted[j], side="left"))
        out.append(ValAtFar(far=float(f), val=ta / n_same, threshold=t, achieved_far=fa / n_diff,
                            n_same=n_same, n_diff=n_diff, n_true_accepts=ta, n_false_accepts=fa,
                            zero_false_accepts=k == 0))
    return out


def _as_fars(far: float | Sequence[float]) -> tuple[list[float], bool]:
    """(targets in input order, duplicates kept, checked by harmony.metrics.fars; was it a scalar)."""
    scalar = np.ndim(far) == 0
    fars = [float(f) for f in (np.asarray([far]) if scalar else np.asarray(far).reshape(-1))]
    return list(check_fars(fars, unique=False)), scalar


def _pair_counts(codes: np.ndarray, cross: bool) -> tuple[int, int]:
    """(n_same, n_diff): pairs i<j of one set, or ordered pairs i != j of probe x gallery."""
    n = len(codes)
    c = np.bincount(codes).astype(object)  # python ints: no overflow
    same = int((c * (c - 1)).sum())
    total = n * (n - 1)
    return (same, total - same) if cross else (same // 2, total // 2 - same // 2)


def val_at_far(probe: np.ndarray, probe_labels: np.ndarray, far: float | Sequence[float] = 1e-3,
               gallery: np.ndarray | None = None, gallery_labels: np.ndarray | None = None, *,
               block_size: int = 4096, device: str | None = None) -> ValAtFar | list[ValAtFar]:
    """VAL@FAR over all pairs of a labelled set (or probe x gallery of the same images).

    probe: ``(n, d)`` float32, L2-normalised; probe_labels: ``(n,)`` identities.
    gallery: the same ``n`` images embedded by another version (same order and labels); then the
    pairs are (i, j), i != j, with ``D(probe_i, gallery_j)`` (the image with itself is no pair).
    far: one target or a sequence (returns a list; one pass serves all targets).
    block_size: tile edge of the blocked scan; memory is at most about ``13 * block_size**2``
    bytes (220 MB at 4096) plus 4-12 bytes per kept distance (``floor(max far * n_diff) + 1`` of
    them, at most 2**24; larger targets switch to a two-pass histogram scan). Measured peak RSS
    growth: 0.3 GB at n = 20,000, 0.7 GB at n = 50,000 (bench/bench_val_at_far.py).
    device: None/"cpu", "cuda[:i]", or "auto" (cuda when available). Matmuls run at full
    float32 precision whatever ``torch.set_float32_matmul_precision`` says.
    Ties at t* are rejected, keeping the achieved FAR <= far.
    """
    fars, scalar = _as_fars(far)
    P = as_embeddings(probe, "probe")
    labels = as_labels(probe_labels, P.shape[0], "probe_labels")
    G = None
    if gallery is not None:
        G = as_embeddings(gallery, "gallery")
        if G.shape != P.shape:
            raise InvalidInput(f"gallery shape {G.shape} differs from probe shape {P.shape}",
                               hint="embed the same images, in the same order, with both versions; "
                                    "for a probe/gallery split use identification_report")
        if gallery_labels is not None:
            gl = as_labels(gallery_labels, G.shape[0], "gallery_labels")
            if not np.array_equal(gl, labels):
                raise InvalidInput("gallery_labels differ from probe_labels",
                                   hint="cross-version VAL needs the same images in the same order")
    if not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise InvalidInput(f"block_size must be a positive integer, got {block_size!r}", hint="use 4096")
    dev = resolve_device(device)
    warn_if_not_unit(P, "probe")
    if G is not None:
        warn_if_not_unit(G, "gallery")

    codes = label_codes(labels)[0]
    n_same, n_diff = _pair_counts(codes, cross=G is not None)
    if n_same == 0:
        raise InvalidInput("no same-identity pairs: every identity has one image",
                           hint="evaluate on identities with at least two images")
    if n_diff == 0:
        raise InvalidInput("no different-identity pairs: all images share one identity",
                           hint="evaluate on at least two identities")

    ks = [far_to_k(f, n_diff) for f in fars]
    results: list[ValAtFar | None] = [None] * len(fars)
    need = [i for i, k in enumerate(ks) if k < n_diff]
    if need:
        for win, pos in _blocked.scan_pairs(P, G, codes, [ks[i] for i in need],
                                            block_size=int(block_size), device=dev):
            vals = _val_at_far_from_pairs(win.same_d, win.diff_d, [fars[need[p]] for p in pos],
                                          n_same=n_same, n_diff=n_diff,
                                          same_below=win.same_below, diff_below=win.diff_below)
            for p, v in zip(pos, vals):
                results[need[p]] = v
    rest = [i for i, k in enumerate(ks) if k >= n_diff]
    for i, v in zip(rest, _val_at_far_from_pairs(np.empty(0), np.empty(0), [fars[i] for i in rest],
                                                 n_same=n_same, n_diff=n_diff)):
        results[i] = v

    zero = [f for f, k in zip(fars, ks) if k == 0]
    if zero:
        warnings.warn(f"VAL@FAR={', '.join(f'{f:g}' for f in zero)} rests on zero false accepts: "
                      f"far * n_diff < 1 with n_diff = {n_diff}; t* is the smallest different-pair "
                      f"distance", MetricsWarning, stacklevel=2)
    return results[0] if scalar else results  # type: ignore[return-value]


def val_far_curve(probe: np.ndarray, labels: np.ndarray, fars: Sequence[float] | None = None,
                  gallery: np.ndarray | None = None, *, block_size: int = 4096,
                  device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(fars, vals) for a VAL-vs-FAR plot; default fars ``np.logspace(-5, 0, 31)`` (6 per decade,
    rounded to 12 digits); one pass over the pairs serves all targets."""
    f = DEFAULT_CURVE_FARS if fars is None else np.asarray(fars, dtype=np.float64).reshape(-1)
    res = val_at_far(probe, labels, list(f), gallery=gallery, block_size=block_size, device=device)
    return np.asarray(f, dtype=np.float64), np.array([r.val for r in res], dtype=np.float64)
