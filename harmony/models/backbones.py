"""The backbone registry: recipes name a backbone; new architectures register here."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from harmony.errors import InvalidInput
from harmony.models.inception_nn import nn2, nn3, nn4, nns1, nns2
from harmony.models.inception_resnet_v1 import inception_resnet_v1
from harmony.models.branched import v1_branch
from harmony.models.mobilefacenet import mobilefacenet
from harmony.models.small_cnn import small_cnn
from harmony.models.zeiler_fergus import nn1

BackboneFactory = Callable[..., tuple[nn.Module, int]]

BACKBONES: dict[str, BackboneFactory] = {
    "small_cnn": small_cnn,
    "inception_resnet_v1": inception_resnet_v1,
    # FaceNet's model zoo (Schroff et al. 2015, Tables 1-3) and MobileFaceNet (Chen et al. 2018)
    "nn1": nn1,
    "nn2": nn2,
    "nn3": nn3,
    "nn4": nn4,
    "nns1": nns1,
    "nns2": nns2,
    "mobilefacenet": mobilefacenet,
}
# networks built from registered backbones, not networks of their own (no zoo row, no recipe
# ``model.backbone``): a harmonic v2 that carries v1's body as a frozen branch (harmonic.v1_branch)
COMPOSITES: dict[str, BackboneFactory] = {"branched": v1_branch}


def build_backbone(name: str, args: dict | None = None) -> tuple[nn.Module, int]:
    """Instantiate a registered backbone: returns (module, feature dimension)."""
    factory = BACKBONES.get(name) or COMPOSITES.get(name)
    if factory is None:
        raise InvalidInput(f"unknown backbone {name!r}", hint=f"choose one of {', '.join(sorted(BACKBONES))}")
    try:
        return factory(**(args or {}))
    except TypeError as e:
        raise InvalidInput(f"bad backbone_args for {name!r}: {e}", hint="check model.backbone_args in the recipe") from None
