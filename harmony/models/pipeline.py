"""The one way images become embeddings: read -> (align) -> resize -> encode in batches -> unit rows.

- read + resize: an ``ImageSource`` (files, synthetic renders, arrays; ``harmony.data.sources``)
  decodes each chunk at the version's input size (``harmony.data.images`` is the one decoder);
- align: the version's ``InputPipeline.align``, ``None`` today (inputs are aligned crops); face
  detection and alignment plug in here;
- encode + normalise: the version's ``Encoder`` (its own normalisation, batches, L2 norm).

One rule for an input that cannot be used: it is masked (``ok=False``) and reported with its path
and reason (:class:`~harmony.data.images.Unusable`); it is never fatal and never a zero vector.
``Embeddings.vectors`` holds only the usable rows, in input order.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from harmony.data.images import Unusable
from harmony.data.sources import FileSource, ImageSource
from harmony.errors import Incompatible, InvalidInput
from harmony.models.encoder import Encoder
from harmony.progress import ProgressFn, tick

if TYPE_CHECKING:
    from harmony.registry import Registry, Version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputPipeline:
    """What a version does to a decoded RGB image before its network (it belongs to the version,
    like its weights): the side length it is resized to and the face alignment before that."""

    image_size: int | None  # None: not recorded, the loaded model knows it
    align: str | None = None  # None: inputs already are aligned crops; detection comes in the next issue


def input_pipeline(v: "Version") -> InputPipeline:
    """A version's pipeline from its record (external: meta.image_size; trained: meta.spec)."""
    size = v.meta.get("image_size") or (v.meta.get("spec") or {}).get("image_size")
    align = v.meta.get("align")
    if align is not None:
        raise InvalidInput(f"version {v.name} asks for face alignment {align!r}, which harmony cannot do yet",
                           hint="register it with aligned crops as input (no align step)")
    return InputPipeline(int(size) if size else None, None)


@dataclass(frozen=True, eq=False)
class Embeddings:
    """``vectors`` ``(n_ok, dim)`` float32 unit rows of the usable inputs in order, ``ok`` ``(n,)``
    over all inputs, the unusable ones with their reasons, and the time spent reading/encoding."""

    vectors: np.ndarray
    ok: np.ndarray
    unusable: tuple[Unusable, ...] = ()
    read_s: float = 0.0
    encode_s: float = 0.0

    def rows(self, index: np.ndarray) -> np.ndarray:
        """The vectors of the inputs ``index`` selects (a bool mask over all ``n`` inputs, or input
        positions); every selected input must be usable."""
        idx = np.asarray(index)
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64)
        if not self.ok[idx].all():
            raise InvalidInput("asked for the vector of an unusable input", hint="select rows within `ok`")
        return self.vectors[np.cumsum(self.ok)[idx] - 1] if idx.size else self.vectors[:0]


def embed_source(encoder: Encoder, source: ImageSource, size: int, *, batch_size: int = 512,
                 progress: ProgressFn | None = None, task: str = "embedding") -> Embeddings:
    """Run the pipeline over ``source`` chunk by chunk (``size``: the side length to load at).
    One tick per chunk; a chunk with no usable image is not sent to the encoder."""
    dim = int(encoder.dim)
    parts, oks, bad = [], [], []
    read_s = encode_s = 0.0
    for a in range(0, source.n, max(int(batch_size), 1)):
        b = min(a + batch_size, source.n)
        t0 = time.perf_counter()
        d = source.load(a, b, size)
        t1 = time.perf_counter()
        vecs = np.asarray(encoder.encode(d.images), dtype=np.float32) if len(d.images) \
            else np.zeros((0, dim), np.float32)
        encode_s += time.perf_counter() - t1
        read_s += t1 - t0
        if vecs.shape != (len(d.images), dim):
            raise InvalidInput(f"encoder returned {vecs.shape} for {len(d.images)} images, expected (n, {dim})",
                               hint="check the version's registered dim")
        parts.append(vecs)
        oks.append(np.asarray(d.ok, bool))
        bad.extend(d.unusable)
        tick(progress, task, b, source.n)
    vectors = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
    ok = np.concatenate(oks) if oks else np.zeros(0, bool)
    return Embeddings(vectors, ok, tuple(bad), read_s, encode_s)


def check_dim(version: "Version", dim: int, gallery: str) -> None:
    """Incompatible when ``version`` embeds in another dimension than ``dim`` (a gallery's)."""
    if int(version.dim) != int(dim):
        raise Incompatible(
            f"version {version.name} embeds in {version.dim} dimensions, gallery {gallery} holds {dim}-D vectors",
            hint=f"versions of different dimension cannot share a gallery: build a new one with "
                 f"`harmony gallery build --version {version.name}`")


@dataclass
class FileEmbedder:
    """A registered version as an embedder of image files: the backfill's
    ``embed_fn(sources) -> (vectors, ok)``. Loads the model on first use; keeps the time spent
    reading files and encoding them (``read_s``, ``encode_s``) for the migration report."""

    reg: "Registry"
    version: str
    batch_size: int = 256
    device: str | None = None
    read_s: float = 0.0
    encode_s: float = 0.0
    _encoder: Any = field(default=None, repr=False)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            from harmony.models.loading import load_encoder

            self._encoder = load_encoder(self.reg, self.version, batch_size=self.batch_size, device=self.device)
        return self._encoder

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    def embed(self, paths: Sequence[str], *, progress: ProgressFn | None = None,
              task: str | None = None) -> Embeddings:
        """Embed image files in batches of ``batch_size``; unusable files come back masked."""
        enc = self.encoder
        out = embed_source(enc, FileSource(tuple(str(p) for p in paths)), int(enc.image_size),
                           batch_size=self.batch_size, progress=progress,
                           task=task or f"embedding with {self.version}")
        self.read_s += out.read_s
        self.encode_s += out.encode_s
        for u in out.unusable:  # commands list the paths; the reason goes to the log (stderr)
            log.warning("skipped: %s", u.reason)
        return out

    def __call__(self, sources: Sequence[str], *, progress: ProgressFn | None = None,
                 task: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        e = self.embed(sources, progress=progress, task=task)
        return e.vectors, e.ok
