"""Exact blocked scans over all pairs of an embedding set: the engine behind ``val_at_far``.

The scan never holds the full ``n x n`` distance matrix. It walks ``block x block`` tiles of
``D = max(2 - 2 P G^T, 0)`` (float32) and keeps only what the threshold rule of DESIGN section 2
needs, as :class:`Window` objects:

* smallest mode (the usual case, ``kmax + 1 <= MAX_KEPT``): the ``m = kmax + 1`` smallest
  different-pair distances and every same-pair distance below the running bound ``tau`` (the
  m-th smallest different-pair distance seen so far). Values at or above ``tau`` can change
  neither the multiset of the m smallest values nor any accept decision (t* <= tau). Once ``tau`` is finite, a tile is filtered on the
  raw dot products (``g > dot_bound(tau)``, a safe superset) before any distance is formed,
  so a tile costs one matmul, one compare and a gather of the few candidates.
* histogram mode (large FAR targets, where ``m`` values would not fit): pass 1 counts different
  and same pairs per bin of the float32 bit pattern (top 20 bits, order-preserving for
  non-negative floats); pass 2 collects the distances in the bin holding each target's (k+1)-th
  different-pair distance, plus the counts below that bin. Twice the matmuls; memory is the
  histograms plus the values of a few bins (each ~0.05% wide in relative terms).

Either way the result is exact: the caller applies the one threshold rule
(``val_at_far._val_at_far_from_pairs``) to each window.

Matmuls run in torch (MKL on CPU, or the GPU). On CPU the element-wise work runs in numpy: on a
busy 2-core machine torch's OpenMP threads spin on small ops and were 5-20x slower than numpy.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from harmony.distances import sq_l2_from_dots

MAX_KEPT = 1 << 24  # most different-pair distances kept in smallest mode (64 MiB of float32)
N_BINS = 1 << 19  # float32 >= 0 shifted right by 12: every finite value lands below 2**19
_BIN_SHIFT = 12
# smallest mode re-selects the m smallest once it holds m + max(REDUCE_GROWTH * m, REDUCE_SLACK)
# candidates: amortised O(1) per candidate; tests set both to 0 (re-select after every tile)
REDUCE_GROWTH = 1.0
REDUCE_SLACK = 1 << 16


@dataclass(frozen=True)
class Window:
    """Every same/different-pair distance in a value range, plus the pair counts below it."""

    same_d: np.ndarray
    diff_d: np.ndarray
    same_below: int = 0
    diff_below: int = 0


# --- numpy (CPU) / torch (GPU) shims: the scans below are written once for both --------------

def _is_np(x: Any) -> bool:
    return isinstance(x, np.ndarray)


def _cat(parts: list) -> Any:
    import torch

    return np.concatenate(parts) if _is_np(parts[0]) else torch.cat(parts)


def _flatnonzero(mask: Any) -> Any:
    return np.flatnonzero(mask) if _is_np(mask) else mask.nonzero().squeeze(1)


def _bincount(x: Any) -> Any:
    import torch

    return np.bincount(x, minlength=N_BINS) if _is_np(x) else torch.bincount(x, minlength=N_BINS)


def _bins(d: Any) -> Any:
    import torch

    return (d.view(np.int32) >> _BIN_SHIFT) if _is_np(d) else (d.view(torch.int32) >> _BIN_SHIFT).long()


def _numpy(x: Any) -> np.ndarray:
    return x if _is_np(x) else x.cpu().numpy()


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """Run float32 matmuls at full precision, whatever the caller set.

    Training code often calls ``torch.set_float32_matmul_precision("high")`` (TF32 on GPUs,
    bf16 passes on some CPUs): about 3 significant digits, far too coarse to rank distances.
    """
    import torch

    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def dot_bound(tau: float) -> float:
    """A dot-product bound: every float32 g with sq_l2_from_dots(g) < tau has g > dot_bound(tau).

    2 - 2g rounds once (2g is exact), by at most 2**-23 near 2; the 1e-6 margin absorbs that
    and the rounding of the bound itself to float32.
    """
    return 1.0 - tau / 2.0 - 1e-6


def _smallest(x: Any, m: int) -> Any:
    """The m smallest values of a 1-D float32 array (unordered)."""
    import torch

    if x.shape[0] <= m:
        return x
    if _is_np(x):
        return np.partition(x, m - 1)[:m].copy()
    return torch.sort(x).values[:m]


class _Tiles:
    """Tile walk with reused buffers (fresh 64 MiB allocations per tile cost more than the matmul).

    ``triangle``: tiles with j-block >= i-block (pairs i < j of one set); else all tiles.
    """

    def __init__(self, P: Any, G: Any, codes: Any, block: int, triangle: bool, use_numpy: bool):
        import torch

        self.P, self.Gt, self.block, self.triangle = P, G.T.contiguous(), block, triangle
        self.cpu = use_numpy  # element-wise work in numpy (CPU tensors only), else torch
        self.codes = codes.numpy() if self.cpu else codes
        size = min(block, P.shape[0]) ** 2
        self.g = torch.empty(size, dtype=torch.float32, device=P.device)
        self.mask = np.empty(size, dtype=bool) if self.cpu else None

    def __iter__(self) -> Iterator[tuple[int, int, int, int]]:
        n, b = self.P.shape[0], self.block
        for i0 in range(0, n, b):
            for j0 in range(i0 if self.triangle else 0, n, b):
                yield i0, min(n, i0 + b), j0, min(n, j0 + b)

    def dots(self, i0: int, i1: int, j0: int, j1: int) -> Any:
        """P_i G_j^T as an (i1-i0, j1-j0) float32 array in the reused buffer (numpy on CPU)."""
        import torch

        out = self.g[: (i1 - i0) * (j1 - j0)].view(i1 - i0, j1 - j0)
        torch.mm(self.P[i0:i1], self.Gt[:, j0:j1], out=out)
        return out.numpy() if self.cpu else out

    def distances(self, i0: int, i1: int, j0: int, j1: int) -> Any:
        """D = max(2 - 2 P_i G_j^T, 0) in float32, formed in place on the matmul output.

        The tile keeps its own matmul (reused buffer, dot-product pre-filter in ``scan_smallest``)
        but turns dots into distances by harmony.distances' one rule, so t* is the same number
        every other distance in harmony would give.
        """
        return sq_l2_from_dots(self.dots(i0, i1, j0, j1), inplace=True)

    def same(self, i0: int, i1: int, j0: int, j1: int) -> Any:
        """(rows, cols) bool mask: same identity."""
        return self.codes[i0:i1, None] == self.codes[None, j0:j1]

    def valid(self, i0: int, i1: int, j0: int, j1: int) -> Any:
        """Mask of the pairs a diagonal tile contributes (j > i, or j != i across versions)."""
        if i0 != j0:
            return None
        import torch

        idx = np.arange(i1 - i0) if self.cpu else torch.arange(i1 - i0, device=self.P.device)
        return idx[None, :] > idx[:, None] if self.triangle else idx[None, :] != idx[:, None]

    def above(self, flat: Any, bound: float) -> Any:
        """Flat indices where ``flat > bound`` (numpy writes the mask into a reused buffer)."""
        if self.cpu:
            return np.flatnonzero(np.greater(flat, bound, out=self.mask[: flat.shape[0]]))
        return _flatnonzero(flat > bound)


def scan_smallest(tiles: _Tiles, m: int) -> Window:
    """Keep the m smallest different-pair distances and the same-pair distances below them."""
    tau = math.inf
    diff_parts: list = []
    same_parts: list = []
    n_kept = 0
    reduce_at = m + max(int(REDUCE_GROWTH * m), REDUCE_SLACK)
    for i0, i1, j0, j1 in tiles:
        valid = tiles.valid(i0, i1, j0, j1)
        if math.isinf(tau):
            d = tiles.distances(i0, i1, j0, j1)
            eq = tiles.same(i0, i1, j0, j1)
            if valid is not None:
                same_v, diff_v = d[eq & valid], d[~eq & valid]
            else:
                same_v, diff_v = d[eq], d[~eq]
        else:
            flat = tiles.dots(i0, i1, j0, j1).reshape(-1)
            idx = tiles.above(flat, dot_bound(tau))
            w = j1 - j0
            r = idx // w
            c = idx - r * w
            v = sq_l2_from_dots(flat[idx], inplace=True)  # a gathered copy: the tile buffer stays dots
            keep = v < tau
            if valid is not None:
                keep &= (c > r) if tiles.triangle else (c != r)
            eq = tiles.codes[i0:i1][r] == tiles.codes[j0:j1][c]
            same_v, diff_v = v[keep & eq], v[keep & ~eq]
        same_parts.append(same_v)
        diff_parts.append(diff_v)
        n_kept += diff_v.shape[0]
        if n_kept >= m and (math.isinf(tau) or n_kept > max(reduce_at - 1, m)):
            kept = _smallest(_cat(diff_parts), m)
            tau = float(kept.max())
            diff_parts, n_kept = [kept], kept.shape[0]
            same = _cat(same_parts)
            same_parts = [same[same < tau]]
    if n_kept < m:
        raise RuntimeError(f"internal: scan kept {n_kept} different pairs, needed {m}")
    diff = _numpy(_smallest(_cat(diff_parts), m))
    same = _numpy(_cat(same_parts))
    return Window(same_d=same, diff_d=np.sort(diff))


def scan_histogram(tiles: _Tiles, ks: list[int]) -> dict[int, Window]:
    """Two passes: histogram of pair distances, then the values of each target's bin."""
    h_all = np.zeros(N_BINS, dtype=np.int64)
    h_same = np.zeros(N_BINS, dtype=np.int64)
    for i0, i1, j0, j1 in tiles:
        b = _bins(tiles.distances(i0, i1, j0, j1))
        eq = tiles.same(i0, i1, j0, j1)
        valid = tiles.valid(i0, i1, j0, j1)
        if valid is not None:
            eq = eq & valid
            h_all += _numpy(_bincount(b[valid]))
        else:
            h_all += _numpy(_bincount(b.reshape(-1)))
        h_same += _numpy(_bincount(b[eq]))
    cum_same = np.cumsum(h_same)
    cum_diff = np.cumsum(h_all - h_same)
    target = {k: int(np.searchsorted(cum_diff, k + 1, side="left")) for k in ks}
    lut = np.zeros(N_BINS, dtype=bool)
    lut[sorted(set(target.values()))] = True
    if not tiles.cpu:
        import torch

        lut = torch.from_numpy(lut).to(tiles.P.device)

    vals, bins, same = [], [], []
    for i0, i1, j0, j1 in tiles:
        d = tiles.distances(i0, i1, j0, j1)
        b = _bins(d)
        sel = lut[b]
        valid = tiles.valid(i0, i1, j0, j1)
        if valid is not None:
            sel &= valid
        vals.append(_numpy(d[sel]))
        bins.append(_numpy(b[sel]))
        same.append(_numpy(tiles.same(i0, i1, j0, j1)[sel]))
    v, b, s = np.concatenate(vals), np.concatenate(bins), np.concatenate(same)
    out = {}
    for k, t in target.items():
        in_bin = b == t
        out[k] = Window(same_d=v[in_bin & s], diff_d=np.sort(v[in_bin & ~s]),
                        same_below=int(cum_same[t - 1]) if t else 0,
                        diff_below=int(cum_diff[t - 1]) if t else 0)
    return out


def scan_pairs(probe: np.ndarray, gallery: np.ndarray | None, codes: np.ndarray, ks: list[int], *,
               block_size: int, device: str, elementwise: str | None = None
               ) -> list[tuple[Window, list[int]]]:
    """Windows covering each k in ``ks``: ``[(window, [positions in ks it serves]), ...]``.

    ``gallery=None``: pairs i < j of ``probe``; else pairs (i, j), i != j, of probe x gallery.
    ``elementwise``: "numpy" (default on CPU) or "torch" (the GPU path; tests run it on CPU too).
    """
    import torch

    use_numpy = (elementwise or ("numpy" if device == "cpu" else "torch")) == "numpy"
    if use_numpy and device != "cpu":
        raise ValueError("numpy element-wise work needs device='cpu'")

    with torch.inference_mode(), full_fp32():
        P = torch.from_numpy(probe).to(device)
        G = P if gallery is None else torch.from_numpy(gallery).to(device)
        tiles = _Tiles(P, G, torch.from_numpy(codes).to(device), block_size, gallery is None, use_numpy)
        m = max(ks) + 1
        if m <= MAX_KEPT:
            return [(scan_smallest(tiles, m), list(range(len(ks))))]
        wins = scan_histogram(tiles, sorted(set(ks)))
    return [(wins[k], [i]) for i, k in enumerate(ks)]
