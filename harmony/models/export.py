"""A harmony-trained version as a standalone model file (ONNX or TorchScript) plus its pipeline sidecar.

What the exported graph takes is what the external adapters feed, so registering the file back
(``add-external --adapter onnx|torchscript --file FILE``, which reads ``FILE.json``) gives the same
embeddings as the trained version:

- ONNX: float32 NCHW RGB pixels 0..255 at the model's size, dynamic batch axis. The graph divides
  by 255 and applies the Embedder's own mean/std, so it starts with Div/Sub (it normalises
  internally); the sidecar says mean 0, std 1 on pixels. Exported with torch's TorchScript-based
  exporter (``dynamo=False``), which needs only the ``onnx`` package (the dynamo exporter needs
  ``onnxscript``).
- TorchScript: a traced Embedder taking float32 NCHW RGB x/255 (the TorchScript adapter's input);
  the sidecar says mean 0, std 1 of x/255.

Both outputs are (n, dim) float32 unit rows, like ``TorchEncoder`` (``encode.encode_array``:
uint8 -> float / 255 -> the Embedder's normalisation -> network -> L2 norm).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harmony.errors import InvalidInput
from harmony.io import atomic_write_json, atomic_writer
from harmony.models.sidecar import SIDECAR_FORMAT, sidecar_path

if TYPE_CHECKING:
    from harmony.registry.store import Registry

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 17


@dataclass(frozen=True)
class Exported:
    """The written model file, its sidecar and the pipeline the sidecar records."""

    path: Path
    sidecar: Path
    pipeline: dict


def _pixel_module(model):
    """The Embedder taking float pixels 0..255 (what the ONNX adapter feeds when mean 0, std 1)."""
    import torch

    class PixelInput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x / 255.0)

    return PixelInput().eval()


def _write_onnx(model, size: int, out: Path) -> None:
    import torch

    example = torch.zeros(2, 3, size, size)
    with warnings.catch_warnings(), atomic_writer(out) as f:
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated but works offline
        torch.onnx.export(_pixel_module(model), (example,), f, dynamo=False, input_names=["pixels"],
                          output_names=["embedding"], dynamic_axes={"pixels": {0: "n"}, "embedding": {0: "n"}},
                          opset_version=ONNX_OPSET)


def _write_torchscript(model, size: int, out: Path) -> None:
    import torch

    example = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript is deprecated in torch 2.13 but is what users run
        traced = torch.jit.trace(model, (example,), check_trace=False)
        with atomic_writer(out) as f:
            torch.jit.save(traced, f)


def export_model(reg: "Registry", name: str, fmt: str, out: Path | str) -> Exported:
    """Write version ``name`` (harmony-trained) to ``out`` as ``fmt`` (onnx | torchscript) and its
    pipeline to ``out.json``."""
    from harmony.models.fold import fold_batchnorm
    from harmony.models.loading import load_embedder

    if fmt not in FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.is_dir():
        raise InvalidInput(f"--out {out} is a folder", hint="pass a file name, e.g. --out model.onnx")
    v = reg.get_version(name)
    model = load_embedder(reg, v.name)  # refuses external versions: they are model files already
    fold_batchnorm(model)  # the file runs as load_encoder does: batch norms inside the convolutions
    size = int(model.spec.image_size)
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401  (torch's exporter needs it)
        except ImportError:
            from harmony.errors import NotFound

            raise NotFound("ONNX export needs the onnx package, which is not installed",
                           hint="pip install 'harmony[onnx]'") from None
        _write_onnx(model, size, out)
        units = "pixels 0..255"
    else:
        _write_torchscript(model, size, out)
        units = "x/255"
    pipeline = {"format": SIDECAR_FORMAT, "model_format": fmt, "image_size": size, "colour": "rgb",
                "input_layout": "NCHW", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "mean_std_of": units,
                "normalises_internally": True, "internal_mean": list(model.spec.mean),
                "internal_std": list(model.spec.std), "dim": int(model.dim), "version": v.name, "sha256": v.sha256}
    side = sidecar_path(out)
    atomic_write_json(side, pipeline)
    return Exported(out, side, pipeline)
