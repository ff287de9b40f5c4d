"""Embeddings of an evaluation set, computed once per (version, image set) and cached on disk.

Layout: ``<registry root>/cache/embeddings/<version>/<sha256[:16]>-<set key[:16]>-<px>px.npy``.
The file name carries the version's artifact sha256 (a replaced model never meets an old cache
file), the image set's content key (see ``sources``) and the size the images were loaded at.
Each file is ``(n, dim)`` float32 over all ``n`` images of the source, in order; an image that
could not be read is an all-zero row (a real embedding has unit norm), see :func:`readable`.
Writes go to a temp file in the same folder, are fsynced and renamed into place, so a reader
(or a crash) never sees half a file; a file of the wrong shape is ignored and recomputed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from harmony.errors import InvalidInput
from harmony.evaluation.sources import ArraySource, ImageSource
from harmony.io import atomic_writer

if TYPE_CHECKING:
    from harmony.data.datamodule import LabelledImages

log = logging.getLogger(__name__)

CACHE_DIR = Path("cache") / "embeddings"
EncoderFactory = Callable[[], Any]


def is_labelled_images(data: Any) -> bool:
    """Duck-typed ``LabelledImages`` check (importing the datamodule would load lightning)."""
    return all(hasattr(data, a) for a in ("images", "labels", "key")) and isinstance(data.images, np.ndarray)


@dataclass(frozen=True)
class Embedded:
    """One version's embeddings of a source: ``vectors`` ``(n, dim)`` float32 (zero rows:
    unreadable images), the size the images were loaded at, and where the cache file is."""

    vectors: np.ndarray
    image_size: int
    from_cache: bool
    path: Path


def as_source(data: "LabelledImages | ImageSource | np.ndarray") -> ImageSource:
    """A ``LabelledImages`` or a uint8 image array becomes an in-memory source."""
    if is_labelled_images(data):
        return ArraySource.of(data.images)
    if isinstance(data, np.ndarray):
        return ArraySource.of(data)
    return data


def load_size(source: ImageSource, image_size: int) -> int:
    """The size a version sees the source at: the source's own when fixed, else the version's."""
    return int(source.size) if source.size else int(image_size)


def recorded_image_size(v: Any) -> int | None:
    """The input size a version's record states (external: meta.image_size; trained: meta.spec)."""
    size = v.meta.get("image_size") or (v.meta.get("spec") or {}).get("image_size")
    return int(size) if size else None


def cache_path(root: Path, version: str, sha256: str, source: ImageSource, size: int) -> Path:
    return Path(root) / CACHE_DIR / version / f"{sha256[:16]}-{source.key[:16]}-{size}px.npy"


def readable(emb: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: rows that are embeddings (not the all-zero mark of an unreadable image)."""
    return np.any(emb != 0, axis=1)


def _save_atomic(path: Path, arr: np.ndarray) -> None:
    with atomic_writer(path) as fh:
        np.save(fh, arr, allow_pickle=False)


def _load(path: Path, n: int, dim: int) -> np.ndarray | None:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable cache file %s (%s)", path, err)
        return None
    if arr.shape != (n, dim) or arr.dtype != np.float32:
        log.warning("ignoring cache file %s: shape %s %s, expected (%d, %d) float32", path, arr.shape, arr.dtype,
                    n, dim)
        return None
    return arr


def embed_source(encoder: Any, source: ImageSource, size: int, batch_size: int = 512,
                 label: str = "embedding", progress: bool = True) -> np.ndarray:
    """Load and encode ``source`` chunk by chunk: ``(n, encoder.dim)`` float32, zero rows for
    unreadable images. The progress bar goes to stderr so ``--json`` output stays clean."""
    from rich.console import Console

    out = np.zeros((source.n, int(encoder.dim)), np.float32)
    bar = None
    console = Console(stderr=True)
    if progress and source.n > 0 and console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       console=console, transient=True)
        bar.start()
        task = bar.add_task(label, total=source.n)
    try:
        for a in range(0, source.n, batch_size):
            b = min(a + batch_size, source.n)
            images, ok = source.load(a, b, size)
            if len(images):
                vecs = np.asarray(encoder.encode(images), dtype=np.float32)
                if vecs.shape != (len(images), out.shape[1]):
                    raise InvalidInput(f"encoder returned {vecs.shape} for {len(images)} images, expected "
                                       f"(n, {out.shape[1]})", hint="check the version's registered dim")
                out[a + np.flatnonzero(ok)] = vecs
            if bar is not None:
                bar.advance(task, b - a)
    finally:
        if bar is not None:
            bar.stop()
    return out


def embed_cached(reg: Any, version: str, data: "LabelledImages | ImageSource | np.ndarray", *,
                 batch_size: int = 512, device: str | None = None, progress: bool = True,
                 encoder_factory: EncoderFactory | None = None) -> np.ndarray:
    """Embeddings ``(n, dim)`` float32 of ``data`` by ``version`` (a name or alias), from the cache
    when this exact model has embedded this exact image set at this size before.

    Rows of unreadable images are all zero (see :func:`readable`). The encoder is loaded only on
    a cache miss (``encoder_factory`` overrides ``load_encoder``); it picks the GPU when there is
    one unless ``device`` says otherwise.
    """
    return embed_version(reg, version, data, batch_size=batch_size, device=device, progress=progress,
                         encoder_factory=encoder_factory).vectors


def embed_version(reg: Any, version: str, data: "LabelledImages | ImageSource | np.ndarray", *,
                  batch_size: int = 512, device: str | None = None, progress: bool = True,
                  encoder_factory: EncoderFactory | None = None) -> Embedded:
    """:func:`embed_cached`, also saying at which size the images were loaded and whether the
    vectors came from the cache."""
    source = as_source(data)
    v = reg.get_version(version)
    if encoder_factory is None:
        def encoder_factory():
            from harmony.models.loading import load_encoder

            return load_encoder(reg, v.name, batch_size=batch_size, device=device)
    image_size = recorded_image_size(v)
    encoder = None
    if image_size is None and source.size is None:  # not recorded: the loaded model knows it
        encoder = encoder_factory()
        image_size = encoder.image_size
    size = load_size(source, image_size or 0)
    path = cache_path(reg.root, v.name, v.sha256, source, size)
    if path.is_file():
        cached = _load(path, source.n, v.dim)
        if cached is not None:
            log.info("embeddings of %s from cache %s", v.name, path)
            return Embedded(cached, size, True, path)
    encoder = encoder or encoder_factory()
    emb = embed_source(encoder, source, size, batch_size, f"embedding with {v.name}", progress)
    _save_atomic(path, emb)
    return Embedded(emb, size, False, path)
