"""Reading real images: the one decoder from files to (H, W, 3) uint8 RGB at a fixed size.

A file that cannot be used is never fatal: :func:`load_images` masks it out (``ok=False``) and
reports it as an :class:`Unusable` with its path and the reason; no placeholder image or vector
stands in for it. :func:`check_image` runs the same decode for ``harmony data scan``, so scan and
build agree on which files are unusable and why.

How a file becomes RGB (one rule for every command):

- size: more than :data:`MAX_PIXELS` pixels is refused from the header alone ("too large: WxH
  pixels, limit N"), before any pixel is decoded; PIL's own decompression-bomb warning is silenced
  (this limit replaces it). A large allowed image is reduced while it decodes: JPEG by DCT scaling
  (``draft``), others by an integer ``reduce`` before any conversion, never below 4x the target side;
- orientation: the EXIF orientation is applied first (``ImageOps.exif_transpose``): pixels come
  out upright;
- 16-bit grayscale (``I;16``, ``I``) is scaled to 8 bits (``value >> 8``); PIL already reads
  16-bit RGB as its high bytes;
- transparency (RGBA, LA, a palette or colour key with transparency) is composited on white;
- every other mode (``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``...) converts with PIL's rules;
- then a bilinear resize of the whole image to ``size x size`` (inputs are aligned crops);
  :func:`read_rgb` stops before it (full resolution, for face detection).
"""

from __future__ import annotations

import struct
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from harmony.errors import InvalidInput

if TYPE_CHECKING:
    from PIL import Image as PILImage

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}

MAX_PIXELS = 150_000_000
"""Most pixels (width x height) an image may have: admits a 12,000 x 9,000 (108 MP) phone photo,
refuses a 20,000 x 20,000 (400 MP) one. Checked from the header, before decoding."""

HEADROOM = 4
"""A large image is reduced while decoding to no less than ``HEADROOM x size`` per side."""

SCAN_SIZE = 160
"""The side length :func:`check_image` decodes at (FaceNet's input size)."""

_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_REDUCIBLE = {"L", "LA", "RGB", "RGBA", "CMYK", "I", "F"}
_header_lock = threading.Lock()


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


class _TooLarge(Exception):
    def __init__(self, size: tuple[int, int]):
        super().__init__(f"too large: {size[0]}x{size[1]} pixels, limit {MAX_PIXELS:,}")


def _header_size(path: str | Path) -> tuple[int, int]:
    """Width and height from the header of a file PIL refused as a decompression bomb (PIL's
    check is lifted only while the header is parsed; no pixel is decoded)."""
    from PIL import Image

    with _header_lock:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(path) as im:
                return im.size
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open(path: str | Path) -> "PILImage.Image":
    """Open lazily (header only) and refuse more than MAX_PIXELS pixels."""
    from PIL import Image

    try:
        im = Image.open(path)
    except Image.DecompressionBombError:
        raise _TooLarge(_header_size(path)) from None
    if im.size[0] * im.size[1] > MAX_PIXELS:
        im.close()
        raise _TooLarge(im.size)
    return im


def to_rgb(im: "PILImage.Image") -> "PILImage.Image":
    """An opened image as 8-bit RGB: 16-bit grey scaled (>> 8), transparency composited on white,
    other modes converted by PIL."""
    from PIL import Image

    if im.mode in _SIXTEEN_BIT:
        grey = np.asarray(im)
        if grey.dtype.kind == "i":  # mode "I" (32-bit) holding 16-bit values
            grey = np.clip(grey, 0, 65535)
        im = Image.fromarray((grey >> 8).astype(np.uint8), "L")
    if "A" in im.getbands() or "a" in im.getbands() or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def _reduce(im: "PILImage.Image", size: int) -> "PILImage.Image":
    """Box-reduce by an integer factor while both sides stay >= HEADROOM x size (before the mode
    conversion, so a large image is never converted at full size); small images pass unchanged."""
    factor = min(im.size) // (HEADROOM * size)
    if factor < 2:
        return im
    if im.mode == "1":
        im = im.convert("L")
    return im.reduce(factor) if im.mode in _REDUCIBLE else im


def _decode(path: str | Path, size: int | None) -> np.ndarray:
    """``size=None``: full resolution (no draft, no reduce, no resize)."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with _open(path) as im:
            if im.format == "JPEG" and size is not None:
                im.draft(None, (HEADROOM * size, HEADROOM * size))
            img: Image.Image = im
            if im.getexif().get(0x0112, 1) != 1:
                img = ImageOps.exif_transpose(im)
            img = to_rgb(_reduce(img, size) if size is not None else img)
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).copy()


def _decode_errors() -> tuple[type[BaseException], ...]:
    from PIL import Image

    return (_TooLarge, Image.DecompressionBombError, OSError, ValueError, SyntaxError, EOFError, IndexError,
            struct.error, MemoryError)


def _read(path: str | Path, size: int | None) -> np.ndarray:
    try:
        return _decode(path, size)
    except _decode_errors() as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InvalidInput(f"cannot read image {path}: {detail}", hint="remove or replace the file") from None


def load_image(path: str | Path, size: int) -> np.ndarray:
    """Decode ``path`` to ``(size, size, 3)`` uint8 RGB by the rules above.

    Raises InvalidInput naming the file and the reason when it cannot be used, so callers can skip it.
    """
    return _read(path, size)


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode ``path`` at full resolution to ``(h, w, 3)`` uint8 RGB by the same rules (pixel
    limit, EXIF orientation applied, 16-bit, transparency, modes), with no resize: what face
    detection reads. Raises InvalidInput naming the file and the reason when it cannot be used."""
    return _read(path, None)


def check_image(path: str | Path) -> Unusable | None:
    """The decode a build runs (at :data:`SCAN_SIZE`), for scanning: ``None`` when ``path`` is
    usable, else why not (the same reason :func:`load_images` reports)."""
    try:
        load_image(path, SCAN_SIZE)
        return None
    except InvalidInput as e:
        return Unusable(str(path), e.message)


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
