"""Reading real images: the one decoder from files to (H, W, 3) uint8 RGB at a fixed size.

A file that cannot be used is never fatal: :func:`load_images` masks it out (``ok=False``) and
reports it as an :class:`Unusable` with its path and the reason; no placeholder image or vector
stands in for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from harmony.errors import InvalidInput

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}


@dataclass(frozen=True)
class Unusable:
    """An input that yields no embedding: where it came from (a path, or ``image #i``) and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class DecodedImages:
    """The usable images of a batch, ``(n_ok, size, size, 3)`` uint8, an ``ok`` mask ``(n,)`` over
    the inputs in order, and the inputs that could not be used."""

    images: np.ndarray
    ok: np.ndarray
    unusable: tuple[Unusable, ...] = ()

    @classmethod
    def all_ok(cls, images: np.ndarray) -> "DecodedImages":
        return cls(images, np.ones(len(images), bool), ())


def load_image(path: str | Path, size: int) -> np.ndarray:
    """Decode, convert to RGB and resize (bilinear, whole image: inputs are aligned crops).

    Raises InvalidInput naming the file when it cannot be decoded, so callers can skip it.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise InvalidInput(f"cannot read image {path}: {e}", hint="remove or replace the file") from None


def load_images(paths: Sequence[str | Path], size: int) -> DecodedImages:
    """Load many images; unreadable ones are masked out and reported, never fatal (callers report
    them together: a log line per file would break ``--json`` output)."""
    out, ok, bad = [], np.zeros(len(paths), bool), []
    for i, p in enumerate(paths):
        try:
            out.append(load_image(p, size))
            ok[i] = True
        except InvalidInput as e:
            bad.append(Unusable(str(p), e.message))
    arr = np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)
    return DecodedImages(arr, ok, tuple(bad))


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted for determinism."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
