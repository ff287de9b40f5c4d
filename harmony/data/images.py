"""Reading real images: one place that turns files into (H, W, 3) uint8 RGB at a fixed size."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from harmony.errors import InvalidInput

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}


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


def load_images(paths: list[str] | list[Path], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Load many images; unreadable ones are logged and masked out, never fatal.

    Returns ``(images (n_ok, size, size, 3) uint8, ok (n,) bool)``.
    """
    out, ok = [], np.zeros(len(paths), bool)
    for i, p in enumerate(paths):
        try:
            out.append(load_image(p, size))
            ok[i] = True
        except InvalidInput as e:
            log.warning("%s", e.message)
    arr = np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)
    return arr, ok


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted for determinism."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
