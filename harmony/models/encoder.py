"""The one Encoder interface every version meets, and the one batch loop that runs it.

An encoder maps uint8 RGB images ``(n, h, w, 3)`` to ``(n, dim)`` float32 L2-normalised rows.
Trained versions (``encode.TorchEncoder``), TorchScript files (``torchscript``) and dlib's face
model (``dlib_model``) all implement it; ``loading.load_encoder`` picks the right one for a
registered version.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np

from harmony.errors import InvalidInput
from harmony.progress import ProgressFn, tick


class Encoder(Protocol):
    """Every version's embedding function: uint8 RGB images -> (n, dim) float32, L2-normalised."""

    dim: int
    image_size: int

    def encode(self, images: np.ndarray) -> np.ndarray: ...


def check_images(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """Check a batch of uint8 RGB images, (n, h, w, 3) or a sequence of (h, w, 3) of any sizes."""
    if isinstance(images, np.ndarray) and images.ndim != 4:
        raise InvalidInput(f"expected images shaped (n, h, w, 3), got {images.shape}", hint="stack RGB images")
    seq = list(images)
    for i, img in enumerate(seq):
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise InvalidInput(f"image {i} is {img.dtype} {img.shape}, expected uint8 (h, w, 3) RGB",
                               hint="convert with np.asarray(PIL.Image.open(p).convert('RGB'))")
    return [np.ascontiguousarray(img) for img in seq]


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """PIL bilinear resize to size x size (a no-op when already that size)."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm, float32 (a zero row stays zero rather than dividing by 0)."""
    x = np.asarray(x, dtype=np.float32)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def encode_in_batches(forward: Callable[[np.ndarray], np.ndarray], images: np.ndarray | Sequence[np.ndarray],
                      batch_size: int, dim: int, *, progress: ProgressFn | None = None,
                      task: str = "embedding") -> np.ndarray:
    """The batch loop of every encoder: ``forward`` on slices of ``batch_size`` images, outputs
    checked against ``dim`` and L2-normalised: ``(n, dim)`` float32. One tick per batch."""
    n = len(images)
    out = np.empty((n, int(dim)), np.float32)
    for a in range(0, n, max(int(batch_size), 1)):
        chunk = images[a:a + batch_size]
        vecs = np.asarray(forward(chunk), dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape != (len(chunk), out.shape[1]):
            raise InvalidInput(f"the model returned {vecs.shape} for {len(chunk)} images, expected "
                               f"({len(chunk)}, {out.shape[1]})", hint="re-register the model with its real dim")
        out[a:a + len(chunk)] = vecs
        tick(progress, task, a + len(chunk), n)
    return l2_normalise(out)
