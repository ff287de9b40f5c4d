"""Loading registered versions: checksum-verified, ``weights_only=True``, one entry point.

The registry stores and verifies artifacts; this module turns a version's artifact into a model:
a harmony checkpoint into an Embedder (``load_embedder``), any version into an Encoder
(``load_encoder``: trained, TorchScript, ONNX or dlib).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harmony.errors import IntegrityError, InvalidInput
from harmony.models.embedder import Embedder, embedder_from_checkpoint
from harmony.models.encode import TorchEncoder
from harmony.models.fold import fold_batchnorm
from harmony.models.encoder import Encoder

if TYPE_CHECKING:
    from harmony.registry import Registry

EXTERNAL_ADAPTERS = ("torchscript", "onnx", "dlib")


def load_torch_checkpoint(path: Path | str) -> dict:
    """``torch.load(weights_only=True)`` on CPU, its failures turned into one IntegrityError.

    torch's own message for a file holding other objects suggests ``weights_only=False``, which
    would run whatever code the file carries: harmony never does that, and never says it."""
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, UnicodeDecodeError) as err:
        kind = "holds objects other than tensors and plain values" if isinstance(err, pickle.UnpicklingError) \
            else "is corrupt or not a torch checkpoint"
        raise IntegrityError(f"checkpoint {path} {kind}; it was not loaded",
                             hint="re-save the model as a plain state dict (torch.save(model.state_dict(), path)) "
                                  "and register it again") from None
    if not isinstance(obj, dict):
        raise IntegrityError(f"checkpoint {path} holds a {type(obj).__name__}, not a dict of tensors",
                             hint="re-save the model as a plain state dict and register it again")
    return obj


def load_checkpoint(reg: "Registry", name: str) -> dict:
    """The verified checkpoint of a version (sha256 checked first), loaded safely on CPU."""
    return load_torch_checkpoint(reg.artifact_path(name, verify=True))


def load_embedder(reg: "Registry", name: str) -> Embedder:
    """A harmony-trained version as a torch module (the registry verifies sha256 first)."""
    v = reg.get_version(name)
    if v.kind == "external":
        raise InvalidInput(f"version {name!r} is external (adapter {v.meta.get('adapter')}); it has no harmony network",
                           hint="use a harmony-trained version for --init, or omit --init")
    return embedder_from_checkpoint(load_checkpoint(reg, v.name))


def load_external_encoder(reg: "Registry", version: str, *, device: str | None = "cpu",
                          batch_size: int = 64) -> Encoder:
    """The Encoder of an external version, after checking its artifact's sha256.

    ``device``: TorchScript runs there (None/auto: the CPU); ONNX uses onnxruntime's CUDA provider
    unless it is ``cpu``."""
    v = reg.get_version(version)
    adapter = v.meta.get("adapter")
    if v.kind != "external" or adapter not in EXTERNAL_ADAPTERS:
        raise InvalidInput(f"version '{v.name}' is not an external version (kind {v.kind})",
                           hint="load trained versions with load_embedder or load_encoder")
    path = reg.artifact_path(v.name, verify=True)
    if adapter == "torchscript":
        from harmony.models.torchscript import TorchScriptEncoder

        return TorchScriptEncoder(path, image_size=v.meta["image_size"], mean=v.meta["mean"], std=v.meta["std"],
                                  dim=v.dim, device="cpu" if device in (None, "auto") else device)
    if adapter == "onnx":
        from harmony.models.onnx_model import onnx_encoder

        return onnx_encoder(path, v.meta, v.dim, batch_size=batch_size, device=device)
    from harmony.models.dlib_model import DlibEncoder
    from harmony.registry.manifests import DLIB_HINT, dlib_model_files, dlib_model_problems

    dlib_model_files()  # NotFound with the install hint when the extra is missing
    problems = dlib_model_problems(path)
    if problems:
        raise IntegrityError(f"dlib model of version '{v.name}': {'; '.join(problems)}",
                             hint=f"reinstall the registered model files ({DLIB_HINT}) or register a new version")
    return DlibEncoder(v.meta["mode"])


def load_encoder(reg: "Registry", name: str, batch_size: int = 512, device: str | None = None) -> Encoder:
    """Any version behind the Encoder interface: ``encode(uint8 (N,H,W,3)) -> (N, dim) float32``,
    checked against the dim its record states."""
    v = reg.get_version(name)
    if v.kind == "external":
        enc = load_external_encoder(reg, v.name, device=device, batch_size=batch_size)
    else:
        # a registered version never trains again: its batch norms fold into the convolutions
        enc = TorchEncoder(fold_batchnorm(load_embedder(reg, v.name)), batch_size=batch_size, device=device)
    if int(enc.dim) != int(v.dim):
        raise IntegrityError(f"version {v.name} is recorded as {v.dim}-D but its model embeds in {enc.dim}-D",
                             hint="re-register the model under a new name with the right dim")
    return enc
