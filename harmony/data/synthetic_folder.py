"""Synthetic faces written out as an image folder ``ROOT/id<identity>/<image>.png``.

Galleries keep each item's source file so a migration can read it again; synthetic faces get one
here. Identities come from one split's stream (``test`` by default: never seen in training).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from harmony.errors import InvalidInput
from harmony.io import atomic_write_bytes
from harmony.progress import ProgressFn, tick

FORMATS = ("png", "jpg")


def encode_image(rgb: np.ndarray, fmt: str = "png") -> bytes:
    """``(h, w, 3)`` uint8 as PNG or JPEG (quality 92) bytes."""
    from PIL import Image

    if fmt not in FORMATS:
        raise InvalidInput(f"image format {fmt!r} is not supported", hint=f"use one of {', '.join(FORMATS)}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG" if fmt == "png" else "JPEG", quality=92)
    return buf.getvalue()


def write_synthetic_faces(root: Path | str, identities: int | Sequence[int], per_identity: int, *,
                          split: str = "test", size: int = 64, seed: int = 0, first_image: int = 0,
                          fmt: str = "png", progress: ProgressFn | None = None) -> Path:
    """Render ``identities`` (a count, or the identity numbers) x ``per_identity`` faces into
    ``root/id<identity:05d>/<image:04d>.<fmt>``; images ``first_image ..`` of each identity, so two
    calls with different ``first_image`` give disjoint photos of the same people."""
    from harmony.data.synthetic import SynthConfig, render

    if per_identity < 1:
        raise InvalidInput(f"per_identity must be >= 1, got {per_identity}")
    root = Path(root)
    who = np.arange(identities) if isinstance(identities, (int, np.integer)) else np.asarray(identities)
    ids = np.repeat(who, per_identity)
    ims = np.tile(np.arange(first_image, first_image + per_identity), len(who))
    images = render(ids, ims, split, SynthConfig(image_size=size, seed=seed))
    for n, (img, i, j) in enumerate(zip(images, ids, ims)):
        atomic_write_bytes(root / f"id{i:05d}" / f"{j:04d}.{fmt}", encode_image(img, fmt))
        tick(progress, "writing faces", n + 1, len(images), unit="images")
    return root
