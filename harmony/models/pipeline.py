"""The one way images become embeddings: read -> (align) -> resize -> colour -> encode -> unit rows.

A version's :class:`InputPipeline` (recorded in its meta, read by :func:`input_pipeline`) says
what happens to a decoded photo before its network:

- without ``align`` (inputs already are face crops): an ``ImageSource`` (files, renders, arrays;
  ``harmony.data.sources``) decodes each chunk straight at the version's ``image_size``
  (``harmony.data.images`` is the one decoder);
- with ``align`` (an :class:`~harmony.align.spec.AlignSpec`): each photo is decoded at FULL
  resolution, one at a time, its largest face detected and aligned there
  (``harmony.align.crop.align_photo``; detection never runs on a resized copy), and the crop is
  resized to ``image_size``; a photo with no detectable face is unusable, reason "no face found";
- ``colour`` "bgr": channels reversed last (the network was trained on BGR);
- encode + normalise: the version's ``Encoder`` applies ``mean``/``std`` (or the network
  normalises internally) and L2-normalises.

One rule for an input that cannot be used (unreadable, or no face): it is masked (``ok=False``)
and reported with its path and reason (:class:`~harmony.data.images.Unusable`); it is never fatal
and never a zero vector. ``Embeddings.vectors`` holds only the usable rows, in input order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from harmony.align.spec import AlignSpec
from harmony.data.images import DecodedImages, Unusable
from harmony.data.sources import FileSource, ImageSource
from harmony.errors import Incompatible, InvalidInput
from harmony.models.encoder import Encoder, resize
from harmony.progress import ProgressFn, tick

if TYPE_CHECKING:
    from harmony.registry import Registry, Version

log = logging.getLogger(__name__)

COLOURS = ("rgb", "bgr")
NO_FACE = "no face found"
DLIB_DETECT_ALIGN = AlignSpec(style="dlib-chip", size=150, upsample=(1, 2))
"""What a dlib version registered in ``detect`` mode aligns with, and how a dlib version registered
before alignment was recorded (meta mode "detect", no ``align``) is read. Up-sampling starts at 1,
as dlib's detect mode always did (and face_recognition's default), so those versions' vectors do
not change; 2 is the retry for small faces."""


@dataclass(frozen=True)
class InputPipeline:
    """What a version does to a decoded RGB photo before its network (it belongs to the version,
    like its weights). Recorded as flat keys of the version's meta (:meth:`meta`)."""

    image_size: int | None  # None: not recorded, the loaded model knows it
    align: AlignSpec | None = None  # None: inputs already are aligned face crops
    colour: str = "rgb"  # channel order the network takes
    mean: tuple[float, ...] | None = None  # per channel of x/255, applied by the encoder (None: none recorded)
    std: tuple[float, ...] | None = None
    normalises_internally: bool = True  # the network normalises its uint8 input itself

    def __post_init__(self) -> None:
        if self.colour not in COLOURS:
            raise InvalidInput(f"unknown colour order {self.colour!r}", hint=f"use one of {', '.join(COLOURS)}")

    def as_dict(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "align": self.align.as_dict() if self.align else None,
                "colour": self.colour, "mean": list(self.mean) if self.mean is not None else None,
                "std": list(self.std) if self.std is not None else None,
                "normalises_internally": self.normalises_internally}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "InputPipeline":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InvalidInput(f"unknown input pipeline key(s) {', '.join(unknown)}", hint=f"known: {', '.join(sorted(known))}")
        kw = dict(raw)
        if kw.get("align") is not None:
            kw["align"] = AlignSpec.from_dict(kw["align"])
        for k in ("mean", "std"):
            if kw.get(k) is not None:
                kw[k] = tuple(float(x) for x in kw[k])
        return cls(**kw)

    def meta(self) -> dict[str, Any]:
        """The keys a registration merges into the version's meta (None values left out)."""
        return {k: v for k, v in self.as_dict().items() if v is not None}

    @property
    def cache_tag(self) -> str:
        """"" for a plain pipeline (no alignment, RGB, nothing recorded about normalisation: the
        embedding cache's file names from before pipelines were recorded); else a short hash of
        everything but the size (which the cache's file name carries on its own)."""
        d = self.as_dict()
        del d["image_size"]
        if self.align is None and self.colour == "rgb" and self.mean is None and self.std is None:
            return ""
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> str:
        steps = [self.align.name if self.align else "as is", f"{self.image_size or '?'}px", self.colour]
        return " -> ".join(steps)


def _align_of(v: "Version", raw: Any) -> AlignSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"version {v.name} records alignment {raw!r}, not an alignment spec",
                           hint="re-register it with --align dlib-chip|facenet|none")
    return AlignSpec.from_dict(raw)


def input_pipeline(v: "Version") -> InputPipeline:
    """A version's pipeline from its record: external versions' meta keys (``image_size``,
    ``align``, ``colour``, ``mean``/``std``, ``normalises_internally``); trained versions' size from
    ``meta.spec`` (their network normalises its input itself). A dlib version in mode "detect"
    registered before alignment was recorded reads as :data:`DLIB_DETECT_ALIGN`."""
    meta = v.meta or {}
    size = meta.get("image_size") or (meta.get("spec") or {}).get("image_size")
    raw_align = meta.get("align")
    if raw_align is None and meta.get("adapter") == "dlib" and meta.get("mode") == "detect":
        raw_align = DLIB_DETECT_ALIGN.as_dict()
    mean, std = meta.get("mean"), meta.get("std")
    return InputPipeline(int(size) if size else None, _align_of(v, raw_align), str(meta.get("colour", "rgb")),
                         tuple(float(x) for x in mean) if mean is not None else None,
                         tuple(float(x) for x in std) if std is not None else None,
                         bool(meta.get("normalises_internally", mean is None)))


def _where(source: ImageSource, i: int) -> str:
    paths = getattr(source, "paths", None)
    return str(paths[i]) if paths is not None else f"image #{i}"


def load_aligned(source: ImageSource, start: int, stop: int, spec: AlignSpec, size: int) -> DecodedImages:
    """``[start, stop)`` of ``source`` read at full resolution, the largest face of each aligned
    by ``spec`` and resized to ``size``: ``(m_ok, size, size, 3)`` uint8; a photo that cannot be
    read, or shows no detectable face, is masked and listed (reason "no face found in PATH")."""
    from harmony.align.crop import align_photo

    out, ok, bad = [], np.zeros(stop - start, bool), []
    for j, img in enumerate(source.load_full(start, stop, size)):
        if isinstance(img, Unusable):
            bad.append(img)
            continue
        crops = align_photo(np.asarray(img), spec)
        if not crops:
            where = _where(source, start + j)
            bad.append(Unusable(where, f"{NO_FACE} in {where}"))
            continue
        out.append(resize(np.ascontiguousarray(crops[0]), size))
        ok[j] = True
    arr = np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)
    return DecodedImages(arr, ok, tuple(bad))


def load_chunk(source: ImageSource, start: int, stop: int, size: int,
               pipeline: InputPipeline | None = None) -> DecodedImages:
    """The read, align, resize and colour steps for ``[start, stop)`` (``pipeline=None``: decode
    at ``size``, as for a version without alignment)."""
    if pipeline is None or pipeline.align is None:
        d = source.load(start, stop, size)
    else:
        d = load_aligned(source, start, stop, pipeline.align, size)
    if pipeline is not None and pipeline.colour == "bgr" and len(d.images):
        d = DecodedImages(np.ascontiguousarray(d.images[..., ::-1]), d.ok, d.unusable)
    return d


@dataclass(frozen=True)
class CropEncoder:
    """A version's encoder for images that already are face crops (training renders, folders of
    crops): the pipeline's per-crop steps (colour order) run, the alignment does not, since the
    images are what an aligner would have produced. Harmonic training embeds its training set
    with the frozen v1 through this."""

    encoder: Encoder
    pipeline: InputPipeline

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    @property
    def image_size(self) -> int:
        return int(self.encoder.image_size)

    def encode(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images)
        if self.pipeline.colour == "bgr" and len(x):
            x = np.ascontiguousarray(x[..., ::-1])
        return self.encoder.encode(x)


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


def embed_source(encoder: Encoder, source: ImageSource, size: int, *, pipeline: InputPipeline | None = None,
                 batch_size: int = 512, progress: ProgressFn | None = None, task: str = "embedding") -> Embeddings:
    """Run the pipeline over ``source`` chunk by chunk (``size``: the side length the encoder
    gets; ``pipeline``: the version's, for its alignment and colour order). One tick per chunk; a
    chunk with no usable image is not sent to the encoder."""
    dim = int(encoder.dim)
    parts, oks, bad = [], [], []
    read_s = encode_s = 0.0
    for a in range(0, source.n, max(int(batch_size), 1)):
        b = min(a + batch_size, source.n)
        t0 = time.perf_counter()
        d = load_chunk(source, a, b, size, pipeline)
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


@dataclass(frozen=True)
class ChunkReader:
    """The read half of :class:`FileEmbedder` (read, align, resize, colour), picklable so that a
    DataLoader worker can run it while the parent encodes the previous batch. Returns the decoded
    chunk and the seconds it took (the worker's clock, for the report's read time)."""

    size: int
    pipeline: InputPipeline

    def __call__(self, paths: Sequence[str]) -> tuple[DecodedImages, float]:
        t = time.perf_counter()
        d = load_chunk(FileSource(tuple(str(p) for p in paths)), 0, len(paths), self.size, self.pipeline)
        return d, time.perf_counter() - t


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
    _pipeline: InputPipeline | None = field(default=None, repr=False)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            from harmony.models.loading import load_encoder

            self._encoder = load_encoder(self.reg, self.version, batch_size=self.batch_size, device=self.device)
        return self._encoder

    @property
    def pipeline(self) -> InputPipeline:
        """The version's recorded input pipeline (read from the registry once)."""
        if self._pipeline is None:
            self._pipeline = input_pipeline(self.reg.get_version(self.version))
        return self._pipeline

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    def embed(self, paths: Sequence[str], *, progress: ProgressFn | None = None,
              task: str | None = None) -> Embeddings:
        """Embed image files in batches of ``batch_size`` through the version's pipeline;
        unusable files (unreadable, or no face found) come back masked."""
        enc, pipe = self.encoder, self.pipeline
        out = embed_source(enc, FileSource(tuple(str(p) for p in paths)), int(pipe.image_size or enc.image_size),
                           pipeline=pipe, batch_size=self.batch_size, progress=progress,
                           task=task or f"embedding with {self.version}")
        self.read_s += out.read_s
        self.encode_s += out.encode_s
        for u in out.unusable:  # commands list the paths; the reason goes to the log (stderr)
            log.warning("skipped: %s", u.reason)
        return out

    def stages(self) -> tuple[ChunkReader, Any]:
        """The pipeline split in two for overlapping them (the backfill's reader workers):
        ``reader(paths) -> (decoded, read_s)`` and ``encode(that) -> (vectors, ok)``; together the
        same vectors as calling the embedder on ``paths`` as one chunk."""
        enc, pipe = self.encoder, self.pipeline
        return ChunkReader(int(pipe.image_size or enc.image_size), pipe), self.encode_read

    def encode_read(self, read: tuple[DecodedImages, float]) -> tuple[np.ndarray, np.ndarray]:
        """The encode half of :meth:`stages`: ``read`` is what the reader returned."""
        d, read_s = read
        dim = self.dim
        t = time.perf_counter()
        vecs = np.asarray(self.encoder.encode(d.images), dtype=np.float32) if len(d.images) \
            else np.zeros((0, dim), np.float32)
        if vecs.shape != (len(d.images), dim):
            raise InvalidInput(f"encoder returned {vecs.shape} for {len(d.images)} images, expected (n, {dim})",
                               hint="check the version's registered dim")
        self.encode_s += time.perf_counter() - t
        self.read_s += read_s
        for u in d.unusable:
            log.warning("skipped: %s", u.reason)
        return vecs, np.asarray(d.ok, bool)

    def __call__(self, sources: Sequence[str], *, progress: ProgressFn | None = None,
                 task: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        e = self.embed(sources, progress=progress, task=task)
        return e.vectors, e.ok
