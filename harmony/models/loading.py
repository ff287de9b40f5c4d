"""Loading registered versions: checksum-verified, ``weights_only=True``, one entry point."""

from __future__ import annotations

from harmony.errors import InvalidInput
from harmony.models.embedder import Embedder, embedder_from_checkpoint
from harmony.models.encode import TorchEncoder


def load_embedder(reg, name: str) -> Embedder:
    """A harmony-trained version as a torch module (the registry verifies sha256 first)."""
    v = reg.get_version(name)
    if v.kind == "external":
        raise InvalidInput(f"version {name!r} is external (adapter {v.meta.get('adapter')}); it has no harmony network",
                           hint="use a harmony-trained version for --init, or omit --init")
    return embedder_from_checkpoint(reg.load_checkpoint(v.name))


def load_encoder(reg, name: str, batch_size: int = 512, device: str | None = None):
    """Any version behind the Encoder interface: ``encode(uint8 (N,H,W,3)) -> (N, dim) float32``."""
    v = reg.get_version(name)
    if v.kind == "external":
        from harmony.registry.external import load_external_encoder

        return load_external_encoder(reg, v.name)
    return TorchEncoder(load_embedder(reg, v.name), batch_size=batch_size, device=device)
