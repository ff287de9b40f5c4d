"""External versions from TorchScript files: a model harmony did not train, as an Encoder.

The user's TorchScript file is the artifact (copied, sha256 recorded); meta holds image_size,
mean, std (of x/255; from the file's sidecar when it has one, ``harmony.models.sidecar``).
encode = PIL bilinear resize, (x/255 - mean)/std, module, L2 norm. Registering runs the module
once to learn its dim, then stores it through ``reg.add_version``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from harmony.errors import InvalidInput
from harmony.models.encoder import check_images, encode_in_batches, resize
from harmony.models.sidecar import check_image_size, check_mean_std, read_sidecar, register_model_file, sidecar_path

if TYPE_CHECKING:
    from harmony.align.spec import AlignSpec
    from harmony.registry.records import Version
    from harmony.registry.store import Registry


class TorchScriptEncoder:
    """A torch.jit module mapping (n, 3, s, s) float images to (n, dim) embeddings."""

    def __init__(self, path: Path, *, image_size: int, mean: Sequence[float], std: Sequence[float],
                 dim: int, batch_size: int = 64, device: str = "cpu"):
        import torch

        try:
            with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.13 but is what users have
                warnings.simplefilter("ignore", DeprecationWarning)
                self.module = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError) as err:
            raise InvalidInput(f"{path} is not a TorchScript file: {str(err).splitlines()[0]}",
                               hint="save the model with torch.jit.script(model).save(path)") from None
        self.dim, self.image_size, self.batch_size, self.device = int(dim), int(image_size), batch_size, device
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1)
        # (x/255 - mean)/std as one in-place affine on the uint8 pixels: x * scale + shift
        self.scale = (1.0 / (255.0 * self.std)).to(device)
        self.shift = (-self.mean / self.std).to(device)
        self.shifts = bool(torch.any(self.shift != 0))

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        # NHWC uint8 -> NCHW float with channels-last strides (what the convolutions run fastest on)
        x = torch.from_numpy(np.stack(batch)).to(self.device).permute(0, 3, 1, 2).float().mul_(self.scale)
        if self.shifts:
            x.add_(self.shift)
        with torch.inference_mode():
            out = self.module(x)
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            raise InvalidInput(f"TorchScript module returned {type(out).__name__} "
                               f"{tuple(out.shape) if isinstance(out, torch.Tensor) else ''}, expected (n, dim)",
                               hint="export a module whose forward returns one (n, dim) tensor")
        return out.detach().float().cpu().numpy()

    def encode(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        imgs = [resize(img, self.image_size) for img in check_images(images)]
        return encode_in_batches(self._forward, imgs, self.batch_size, self.dim)


def probe_dim(path: Path, image_size: int) -> int:
    """Run a TorchScript file once on a blank image to learn (and check) its embedding dim."""
    enc = TorchScriptEncoder(path, image_size=image_size, mean=(0, 0, 0), std=(1, 1, 1), dim=0)
    return int(enc._forward(np.zeros((1, image_size, image_size, 3), np.uint8)).shape[1])


def register_torchscript(reg: "Registry", name: str, file: Path | str, *, image_size: int | None = None,
                         mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                         dim: int | None = None, parent: str | None = None, command: str | None = None,
                         align: "AlignSpec | None" = None) -> "Version":
    """Register a TorchScript embedding model as external version ``name`` (``align``: its input
    pipeline's face alignment, recorded in meta; None: inputs are face crops).

    ``FILE.json`` (written by ``harmony registry export-model``), when present, supplies the
    image size, mean and std that are not passed; otherwise the size is required and mean/std
    default to 0.5 (of x/255)."""
    file = Path(file)
    if not file.is_file():
        raise InvalidInput(f"TorchScript file {file} does not exist", hint="pass --file PATH")
    side = read_sidecar(file, "torchscript") or {}
    image_size = image_size if image_size is not None else side.get("image_size")
    if image_size is None:
        raise InvalidInput(f"the torchscript adapter needs --image-size for {file} (it has no "
                           f"{sidecar_path(file).name})",
                           hint="e.g. --image-size 112")
    mean_, std_ = check_mean_std(mean if mean is not None else side.get("mean", (0.5, 0.5, 0.5)),
                                 std if std is not None else side.get("std", (0.5, 0.5, 0.5)),
                                 "--mean 0.5,0.5,0.5 --std 0.5,0.5,0.5")
    size = check_image_size(image_size)
    reg.require_writable(file.stat().st_size)
    measured = probe_dim(file, size)
    if dim is not None and dim != measured:
        raise InvalidInput(f"--dim {dim} but the module returns {measured}-D embeddings", hint=f"use --dim {measured}")
    meta: dict = {"adapter": "torchscript", "image_size": size, "mean": mean_, "std": std_}
    return register_model_file(reg, name, file, backbone=f"torchscript:{file.name}", dim=measured, meta=meta, side=side, align=align,
                               parent=parent, command=command)
