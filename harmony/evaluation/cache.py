"""Embeddings of an evaluation set, computed once per (version, image set) and cached on disk.

Layout: ``<registry root>/cache/embeddings/<version>/<sha256[:16]>-<set key[:16]>[-<pipeline>]-<px>px.npz``.
The file name carries the version's artifact sha256 (a replaced model never meets an old cache
file), the image set's content key (see ``harmony.data.sources``), the version's input pipeline
(``InputPipeline.cache_tag``: alignment, colour order, mean/std; absent for a plain pipeline, so
a version re-registered under the same name with another aligner never reads the old vectors)
and the size the images were loaded at. Each file holds ``ok`` ``(n,)`` over all ``n`` images of the source, ``vectors``
``(n_ok, dim)`` float32 of the usable ones in order, and the unusable ones' ``paths`` and
``reasons``: the embedding pipeline's one rule (``harmony.models.pipeline``), stored explicitly.
Writes go to a temp file in the same folder, are fsynced and renamed into place, so a reader
(or a crash) never sees half a file; a file of the wrong shape is ignored and recomputed.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from harmony.data.images import Unusable
from harmony.data.sources import ArraySource, ImageSource
from harmony.io import atomic_writer
from harmony.models.encoder import Encoder
from harmony.models.pipeline import Embeddings, InputPipeline, embed_source, input_pipeline
from harmony.progress import ProgressFn

if TYPE_CHECKING:
    from harmony.data.datamodule import LabelledImages
    from harmony.registry import Registry

log = logging.getLogger(__name__)

CACHE_DIR = Path("cache") / "embeddings"
EncoderFactory = Callable[[], Encoder]


def is_labelled_images(data: Any) -> bool:
    """Duck-typed ``LabelledImages`` check (importing the datamodule would load lightning)."""
    return all(hasattr(data, a) for a in ("images", "labels", "key")) and isinstance(data.images, np.ndarray)


@dataclass(frozen=True, eq=False)
class Embedded:
    """One version's embeddings of a source (usable rows, ``ok`` mask, unusable inputs), the size
    the images were loaded at, whether they came from the cache, and where the cache file is."""

    embeddings: Embeddings
    image_size: int
    from_cache: bool
    path: Path

    @property
    def vectors(self) -> np.ndarray:
        """``(n_ok, dim)`` float32 unit rows of the usable images, in source order."""
        return self.embeddings.vectors

    @property
    def ok(self) -> np.ndarray:
        return self.embeddings.ok

    @property
    def unusable(self) -> tuple[Unusable, ...]:
        return self.embeddings.unusable

    def rows(self, index: np.ndarray) -> np.ndarray:
        """See :meth:`Embeddings.rows`."""
        return self.embeddings.rows(index)


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


def cache_path(root: Path, version: str, sha256: str, source: ImageSource, size: int,
               pipeline: InputPipeline | None = None) -> Path:
    tag = pipeline.cache_tag if pipeline is not None else ""
    return Path(root) / CACHE_DIR / version / f"{sha256[:16]}-{source.key[:16]}{'-' + tag if tag else ''}-{size}px.npz"


def _save_atomic(path: Path, emb: Embeddings) -> None:
    with atomic_writer(path) as fh:
        np.savez(fh, vectors=emb.vectors, ok=emb.ok, paths=np.array([u.path for u in emb.unusable], dtype=str),
                 reasons=np.array([u.reason for u in emb.unusable], dtype=str))


def _load(path: Path, n: int, dim: int) -> Embeddings | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            vectors, ok, paths, reasons = z["vectors"], z["ok"], z["paths"], z["reasons"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        log.warning("ignoring unreadable cache file %s (%s)", path, err)
        return None
    n_ok = int(ok.sum()) if ok.dtype == bool else -1
    if ok.shape != (n,) or vectors.shape != (n_ok, dim) or vectors.dtype != np.float32 \
            or paths.shape != reasons.shape or len(paths) != n - n_ok:
        log.warning("ignoring cache file %s: vectors %s %s and ok %s %s, expected (n_ok, %d) float32 over %d images",
                    path, vectors.shape, vectors.dtype, ok.shape, ok.dtype, dim, n)
        return None
    return Embeddings(vectors, ok, tuple(Unusable(str(p), str(r)) for p, r in zip(paths, reasons)))


def embed_cached(reg: "Registry", version: str, data: "LabelledImages | ImageSource | np.ndarray", *,
                 batch_size: int = 512, device: str | None = None, progress: ProgressFn | None = None,
                 encoder_factory: EncoderFactory | None = None) -> Embedded:
    """The embeddings of ``data`` by ``version`` (a name or alias), from the cache when this exact
    model has embedded this exact image set at this size before.

    Unusable images are masked (``Embedded.ok``) and listed with their reasons. The encoder is
    loaded only on a cache miss (``encoder_factory`` overrides ``load_encoder``); it picks the
    GPU when there is one unless ``device`` says otherwise.
    """
    source = as_source(data)
    v = reg.get_version(version)
    if encoder_factory is None:
        def encoder_factory() -> Encoder:
            from harmony.models.loading import load_encoder

            return load_encoder(reg, v.name, batch_size=batch_size, device=device)
    pipeline = input_pipeline(v)
    image_size = pipeline.image_size
    encoder = None
    if image_size is None and source.size is None:  # not recorded: the loaded model knows it
        encoder = encoder_factory()
        image_size = encoder.image_size
    size = load_size(source, image_size or 0)
    path = cache_path(reg.root, v.name, v.sha256, source, size, pipeline)
    if path.is_file():
        cached = _load(path, source.n, v.dim)
        if cached is not None:
            log.info("embeddings of %s from cache %s", v.name, path)
            _log_unusable(cached)
            return Embedded(cached, size, True, path)
    encoder = encoder or encoder_factory()
    emb = embed_source(encoder, source, size, pipeline=pipeline, batch_size=batch_size, progress=progress,
                       task=f"embedding with {v.name}")
    _save_atomic(path, emb)
    _log_unusable(emb)
    return Embedded(emb, size, False, path)


def _log_unusable(emb: Embeddings) -> None:
    """Commands list the skipped paths; the reasons go to the log (stderr), as the backfill's do."""
    for u in emb.unusable:
        log.warning("skipped: %s", u.reason)
