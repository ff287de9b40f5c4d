"""Image sources: where pixels come from (files, renders, arrays), and a stable key for what they are.

The read step of the embedding pipeline (``harmony.models.pipeline``). An evaluation set is fixed
before any model sees it; each version then loads it at its own input size (two versions may
differ), in chunks, so a large folder is never held in memory at once.
``load`` decodes at a model's input size; ``load_full`` yields each image at full resolution, one
at a time, for versions that detect and align faces first (``harmony.models.pipeline``).
Every source has a ``key``: a sha256 over what determines its pixels, so the embedding cache can
tell one image set from another without decoding anything:

- synthetic: split, seed, identity/image counts, render size, the generator's settings and the
  hash of the renderer's own source file (a changed renderer is a different data set);
- files: the sorted absolute paths with their sizes and mtimes (an edited, added or removed file
  is a different data set);
- arrays in memory: the pixel bytes themselves.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np

from harmony.data.images import DecodedImages, Unusable, load_images, read_rgb
from harmony.errors import InvalidInput


class ImageSource(Protocol):
    """``n`` images in a fixed order; ``load(start, stop, size)`` returns the usable ones of
    ``[start, stop)`` as ``(m_ok, size, size, 3)`` uint8, an ``ok`` mask ``(stop - start,)`` and
    the unusable ones with their reasons (a :class:`DecodedImages`)."""

    n: int
    key: str
    size: int | None  # the size its pixels exist at (renders, arrays); None: load at any size

    def load(self, start: int, stop: int, size: int) -> DecodedImages: ...

    def load_full(self, start: int, stop: int, size: int) -> Iterator[np.ndarray | Unusable]:
        """Each input of ``[start, stop)`` in order at its full resolution, ``(h, w, 3)`` uint8
        (what face detection reads), or why it cannot be used. One image at a time: a chunk of
        full-resolution photos is never held at once. ``size``: the side renders are made at
        when they have none of their own (files and arrays have theirs)."""
        ...


def _sha(*parts: object) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(str(p).encode())
        h.update(b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _renderer_hash() -> str:
    from harmony.data import synthetic

    return hashlib.sha256(Path(synthetic.__file__).read_bytes()).hexdigest()


@dataclass(frozen=True)
class SyntheticSource:
    """``n_identities x per_identity`` procedural faces of one split, rendered on demand.

    ``size=None`` renders at whatever size each version asks for (the same faces at its own
    resolution); a fixed size renders once at that size and each encoder resizes.
    """

    n_identities: int
    per_identity: int
    split: str = "test"
    seed: int = 0
    size: int | None = None

    def __post_init__(self) -> None:
        if self.n_identities < 2 or self.per_identity < 2:
            raise InvalidInput(f"a synthetic eval set needs >= 2 identities with >= 2 images each, got "
                               f"{self.n_identities} x {self.per_identity}",
                               hint="e.g. --synthetic 300 --per-identity 8")
        if self.size is not None and not 16 <= self.size <= 512:
            raise InvalidInput(f"--size {self.size} out of range", hint="use 16..512 (64 for CPU, 160 like FaceNet)")

    @property
    def n(self) -> int:
        return self.n_identities * self.per_identity

    @property
    def labels(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_identities, dtype=np.int64), self.per_identity)

    @property
    def key(self) -> str:
        from harmony.data.synthetic import SynthConfig

        cfg = SynthConfig(seed=self.seed)
        return _sha("synthetic", self.split, self.n_identities, self.per_identity, self.size, repr(cfg),
                    _renderer_hash())

    def name(self, size: int | None = None) -> str:
        """The data set's name in the registry, matching what training records for its test split."""
        s = self.size or size
        px = f"{s}px" if s else "native-px"
        return f"synthetic:{self.split}:seed{self.seed}:{self.n_identities}x{self.per_identity}:{px}"

    def load(self, start: int, stop: int, size: int) -> DecodedImages:
        from harmony.data.synthetic import SynthConfig, render

        i = np.arange(start, stop)
        images = render(i // self.per_identity, i % self.per_identity, self.split,
                        SynthConfig(image_size=self.size or size, seed=self.seed))
        return DecodedImages.all_ok(images)

    def load_full(self, start: int, stop: int, size: int) -> Iterator[np.ndarray | Unusable]:
        yield from self.load(start, stop, size).images


@dataclass(frozen=True)
class FileSource:
    """Image files in a fixed order (absolute paths); unreadable ones come back masked out."""

    paths: tuple[str, ...]
    key: str = field(default="", compare=False)

    @classmethod
    def of(cls, paths: Sequence[str | Path]) -> "FileSource":
        """Absolute paths, fingerprinted by (path, size, mtime) in sorted order; missing files
        fingerprint as missing (so a file that appears later changes the key)."""
        absolute = tuple(str(Path(p).absolute()) for p in paths)
        h = hashlib.sha256(b"files\0")
        for p in sorted(absolute):
            try:
                st = os.stat(p)
                h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{p}\0missing\n".encode())
        return cls(absolute, h.hexdigest())

    @property
    def n(self) -> int:
        return len(self.paths)

    @property
    def size(self) -> None:
        """Files decode at any size: each version loads them at its own input size."""
        return None

    def load(self, start: int, stop: int, size: int) -> DecodedImages:
        return load_images(self.paths[start:stop], size)

    def load_full(self, start: int, stop: int, size: int) -> Iterator[np.ndarray | Unusable]:
        for p in self.paths[start:stop]:
            try:
                yield read_rgb(p)
            except InvalidInput as e:
                yield Unusable(p, e.message)


@dataclass(frozen=True, eq=False)
class ArraySource:
    """Images already in memory, ``(n, H, W, 3)`` uint8 (e.g. a ``LabelledImages``)."""

    images: np.ndarray
    key: str = ""

    @classmethod
    def of(cls, images: np.ndarray) -> "ArraySource":
        a = np.ascontiguousarray(images)
        if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8:
            raise InvalidInput(f"expected uint8 images shaped (n, H, W, 3), got {a.dtype} {a.shape}",
                               hint="stack RGB images as uint8")
        h = hashlib.sha256(f"array\0{a.shape}\0".encode())
        h.update(memoryview(a).cast("B"))
        return cls(a, h.hexdigest())

    @property
    def n(self) -> int:
        return len(self.images)

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def load(self, start: int, stop: int, size: int) -> DecodedImages:
        return DecodedImages.all_ok(self.images[start:stop])

    def load_full(self, start: int, stop: int, size: int) -> Iterator[np.ndarray | Unusable]:
        yield from self.images[start:stop]
