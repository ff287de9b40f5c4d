"""A harmony-trained Embedder behind the Encoder interface: numpy uint8 in, float32 unit rows out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from harmony.errors import InvalidInput
from harmony.models.embedder import Embedder
from harmony.models.encoder import encode_in_batches
from harmony.progress import ProgressFn


def pick_device(device: str | None = None) -> torch.device:
    """``None``/``"auto"``: the GPU when there is one, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def encode_array(model: Embedder, images: np.ndarray, batch_size: int = 512, device: str | None = None,
                 progress: ProgressFn | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, dim) float32 unit vectors. Images of another size are resized
    (bilinear) to the model's input size. ``progress`` gets one tick per batch."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InvalidInput(f"expected images of shape (N, H, W, 3), got {images.shape}")
    dev = pick_device(device)
    was_training = model.training
    model.eval().to(dev)
    size = model.spec.image_size

    def forward(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(dev).permute(0, 3, 1, 2)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x.float() / 255.0, size=(size, size), mode="bilinear", align_corners=False)
        return model(x).float().cpu().numpy()

    try:
        with torch.inference_mode():
            return encode_in_batches(forward, images, batch_size, model.dim, progress=progress,
                                     task="embedding images")
    finally:
        model.train(was_training)


@dataclass
class TorchEncoder:
    """Wraps a harmony Embedder behind the Encoder interface used by eval, galleries and migrations."""

    model: Embedder
    batch_size: int = 512
    device: str | None = None

    @property
    def dim(self) -> int:
        return self.model.dim

    @property
    def image_size(self) -> int:
        return self.model.spec.image_size

    def encode(self, images: np.ndarray) -> np.ndarray:
        return encode_array(self.model, images, self.batch_size, self.device)


def raw_pixels(images: np.ndarray) -> np.ndarray:
    """The no-learning baseline: mean-centred, L2-normalised pixel vectors (n, H*W*3)."""
    x = images.reshape(len(images), -1).astype(np.float32)
    x -= x.mean(1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    return x
