"""Deterministic stand-ins for tests, demos and benchmarks of galleries and migrations.

- :func:`clustered_unit_vectors`: face-like embedding clouds (identities = clusters on the unit
  sphere, images = noisy copies), the "structured" data IVF and SQ8 are judged on.
- :class:`HashEmbedder`: an ``embed_fn(sources) -> (vectors, ok)`` whose vector for a file is a
  seeded random unit vector keyed by (version, file content); a missing or unreadable file gives
  ``ok=False``. With ``drift_from`` its vectors stay close to another version's (a "compatible"
  upgrade), so mixed old/new searches have something meaningful to rank.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def clustered_unit_vectors(n: int, dim: int = 128, n_clusters: int | None = None, spread: float = 0.6,
                           seed: int = 0, centres: np.ndarray | None = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` unit vectors ``(n, dim)`` float32 around ``n_clusters`` random centres (default n/10).

    Returns ``(vectors, labels, centres)``; pass ``centres`` back to draw queries (new "images")
    of the same identities. ``spread`` is the noise norm relative to the unit centre.
    """
    rng = np.random.default_rng(seed)
    if centres is None:
        c = n_clusters or max(1, n // 10)
        centres = normalise(rng.standard_normal((c, dim), dtype=np.float32))
    labels = rng.integers(0, centres.shape[0], size=n)
    out = np.empty((n, dim), np.float32)
    step = 65536
    for s in range(0, n, step):
        e = min(n, s + step)
        noise = rng.standard_normal((e - s, dim), dtype=np.float32) * (spread / np.sqrt(dim))
        out[s:e] = normalise(centres[labels[s:e]] + noise)
    return out, labels, centres


@dataclass(frozen=True)
class HashEmbedder:
    """Fake model ``version``: content hash -> seeded unit vector. Not a face model; tests only."""

    version: str
    dim: int = 128
    read_files: bool = True  # False: hash the source string itself (no file I/O, for benchmarks)
    delay_s: float = 0.0  # sleep per call, to imitate a slow model
    drift_from: str | None = None  # stay near this version's vectors (a compatible upgrade)
    drift: float = 0.3

    def vector(self, data: bytes) -> np.ndarray:
        if self.drift_from is not None:
            base = HashEmbedder(self.drift_from, self.dim).vector(data)
            noise = _seeded_unit(self.version, data, self.dim)
            return normalise(base + self.drift * noise)
        return _seeded_unit(self.version, data, self.dim)

    def __call__(self, sources: list[str]) -> tuple[np.ndarray, np.ndarray]:
        ok = np.zeros(len(sources), dtype=bool)
        vecs = []
        for i, s in enumerate(sources):
            if self.read_files:
                try:
                    data = Path(s).read_bytes()
                except OSError:
                    continue
            else:
                data = s.encode()
            ok[i] = True
            vecs.append(self.vector(data))
        if self.delay_s:
            time.sleep(self.delay_s)
        return np.asarray(vecs, dtype=np.float32).reshape(-1, self.dim), ok


def _seeded_unit(version: str, data: bytes, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(version.encode() + b"\0" + data).digest()[:8], "little")
    return normalise(np.random.default_rng(seed).standard_normal(dim))
