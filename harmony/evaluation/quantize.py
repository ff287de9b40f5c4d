"""128 bytes per face: VAL@FAR with one byte per dimension next to float32 (FaceNet section 5.4).

Scheme: FAISS's ``ScalarQuantizer`` ``QT_8bit``, a per-dimension scale: each dimension's min and
max over the embeddings being quantised are found (``RS_minmax``), the range is cut into 256
levels and a component is stored as its level (one uint8), decoded as the level's centre. So
every dimension gets its own scale, fitted without labels on the very set that is then scored
(a deployment fits it once on its gallery). Scores are the house distance, squared L2 of unit
vectors (``harmony.distances``), on the decoded vectors re-normalised to unit length (decoding
moves the norms by about 1e-3; the report gives the largest such move), so t* means what it
means for float32 and the ``val_at_far`` rule is the same.

The rows scored are the rows ``harmony eval`` scores: on a labelled set the images every
version read, minus identities left with fewer than 2; on a pair list the pairs with two
readable images. Tests: tests/evaluation/test_quantize.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harmony.distances import paired_sq_l2
from harmony.errors import InvalidInput
from harmony.evaluation.cache import Embedded
from harmony.evaluation.datasets import EvalData, LabelledSet
from harmony.metrics import MetricsWarning, ValAtFar, lfw_protocol, val_at_far
from harmony.models.encoder import l2_normalise

SCHEMES = ("int8",)
SCALE = "per-dimension (FAISS ScalarQuantizer QT_8bit, min/max fitted on the scored embeddings)"


def check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise InvalidInput(f"--quantize {scheme!r} is not a known scheme", hint=f"use {' or '.join(SCHEMES)}")
    return scheme


@dataclass(frozen=True)
class Int8Codes:
    """``codes`` ``(n, d)`` uint8 (one byte per dimension) and their decoded float32 vectors."""

    codes: np.ndarray
    decoded: np.ndarray

    @property
    def bytes_per_vector(self) -> int:
        return int(self.codes.shape[1])


def int8_codes(x: np.ndarray) -> Int8Codes:
    """Per-dimension 8-bit scalar quantisation of ``x`` ``(n, d)`` float32, trained on ``x``."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InvalidInput(f"expected (n, d) embeddings with n >= 1, got {x.shape}", hint="embed some images first")
    sq = faiss.ScalarQuantizer(x.shape[1], faiss.ScalarQuantizer.QT_8bit)
    sq.train(x)
    codes = sq.compute_codes(x)
    return Int8Codes(codes, sq.decode(codes))


def dequantised(x: np.ndarray) -> tuple[np.ndarray, float]:
    """(decoded int8 vectors re-normalised to unit length, the largest ``|norm - 1|`` of the decoded ones)."""
    dec = int8_codes(x).decoded
    drift = float(np.abs(np.linalg.norm(dec, axis=1) - 1.0).max()) if len(dec) else 0.0
    return l2_normalise(dec), drift


@dataclass(frozen=True)
class QuantRow:
    version: str
    far: float
    float32: ValAtFar
    int8: ValAtFar

    @property
    def delta(self) -> float:
        return self.int8.val - self.float32.val

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "far": self.far, "float32": self.float32.val, "int8": self.int8.val,
                "delta": self.delta, "float32_detail": self.float32.as_dict(), "int8_detail": self.int8.as_dict()}


@dataclass(frozen=True)
class QuantizeReport:
    """One row per (version, FAR); ``bytes`` per face of each representation."""

    scheme: str
    rows: tuple[QuantRow, ...]
    bytes_float32: dict[str, int]
    bytes_int8: dict[str, int]
    norm_drift: dict[str, float]  # the largest |norm - 1| of a decoded vector, per version
    scale: str = SCALE

    def as_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "scale": self.scale, "rows": [r.as_dict() for r in self.rows],
                "bytes_float32": self.bytes_float32, "bytes_int8": self.bytes_int8, "norm_drift": self.norm_drift}


def _labelled_rows(data: LabelledSet, embedded: Mapping[str, Embedded]) -> tuple[np.ndarray, np.ndarray]:
    """(ok mask, labels) of the images ``harmony eval`` scores on a labelled set."""
    ok = np.logical_and.reduce([e.ok for e in embedded.values()])
    labels = np.asarray(data.labels)
    ids, counts = np.unique(labels[ok], return_counts=True)
    ok = ok & ~np.isin(labels, ids[counts < 2])
    return ok, labels[ok]


def _pair_rows(data: Any, embedded: Mapping[str, Embedded]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, same, folds) of the pairs with two readable images."""
    ok = np.logical_and.reduce([e.ok for e in embedded.values()])
    a, b = data.a, data.b
    usable = (a >= 0) & (b >= 0)
    usable &= ok[np.where(a >= 0, a, 0)] & ok[np.where(b >= 0, b, 0)]
    return a[usable], b[usable], data.same[usable], data.folds[usable]


def quantize_report(data: EvalData, embedded: Mapping[str, Embedded], fars: Sequence[float], *,
                    scheme: str = "int8", device: str | None = None) -> QuantizeReport:
    """float32 and int8 VAL@FAR of every version in ``embedded`` on the rows ``harmony eval`` scored."""
    check_scheme(scheme)
    rows: list[QuantRow] = []
    drift: dict[str, float] = {}
    dims = {name: int(e.vectors.shape[1]) for name, e in embedded.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricsWarning)  # `harmony eval` already reported them
        if isinstance(data, LabelledSet):
            ok, labels = _labelled_rows(data, embedded)
            for name, e in embedded.items():
                x = e.rows(ok)
                q, drift[name] = dequantised(x)
                f32 = val_at_far(x, labels, list(fars), device=device or "auto")
                i8 = val_at_far(q, labels, list(fars), device=device or "auto")
                rows += [QuantRow(name, float(f), f32[i], i8[i]) for i, f in enumerate(fars)]
        else:
            a, b, same, folds = _pair_rows(data, embedded)
            if not same.size:
                raise InvalidInput("no pair has two readable images", hint="check --data points at the image root")
            for name, e in embedded.items():
                used = np.unique(np.concatenate([a, b]))
                q_used, drift[name] = dequantised(e.rows(used))
                q = np.zeros((int(used.max()) + 1, dims[name]), np.float32)
                q[used] = q_used
                d32 = paired_sq_l2(e.rows(a), e.rows(b))
                d8 = paired_sq_l2(q[a], q[b])
                for f in fars:
                    rows.append(QuantRow(name, float(f), lfw_protocol(d32, same, folds, far=f).val,
                                         lfw_protocol(d8, same, folds, far=f).val))
    return QuantizeReport(scheme, tuple(rows), {k: 4 * d for k, d in dims.items()}, dict(dims), drift)
