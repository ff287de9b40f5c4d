"""Metric-learning losses. Miners pick triplets without gradients; losses consume them; distances
are squared L2 from :mod:`harmony.distances`.

- ``triplet_loss``: FaceNet's triplet loss, semihard / hard / batch-all mining, squared L2.
- ``harmonic_triplet_loss``: the FaceNet appendix's harmonic loss over mixed v1/v2 embeddings,
  plus an optional pull onto v1's identity prototypes.
- ``bct_influence_loss``: backward-compatible training (Shen et al. 2020) against v1's classifier.
"""

from harmony.losses.bct import bct_influence_loss
from harmony.losses.harmonic import harmonic_triplet_loss, prototype_pull
from harmony.losses.miners import MINING, mine
from harmony.losses.triplet import triplet_loss

__all__ = ["MINING", "bct_influence_loss", "harmonic_triplet_loss", "mine", "prototype_pull", "triplet_loss"]
