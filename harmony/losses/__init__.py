"""Metric-learning losses. Miners pick triplets without gradients; losses consume them; distances
are squared L2 from :mod:`harmony.distances`.

- ``triplet_loss``: FaceNet's triplet loss, semihard / hard / batch-all mining, squared L2.
- ``harmonic_triplet_loss``: the FaceNet appendix's harmonic loss over mixed v1/v2 embeddings,
  plus an optional pull onto v1's identity prototypes.
- ``bct_influence_loss``: backward-compatible training (Shen et al. 2020) against v1's classifier.
- ``margin_loss`` / ``MarginClassifier``: SphereFace, CosFace, ArcFace over a training-only classifier.
"""

from harmony.losses.bct import bct_influence_loss
from harmony.losses.harmonic import harmonic_triplet_loss, prototype_pull
from harmony.losses.margins import MARGIN_LOSSES, MarginClassifier, MarginParams, margin_loss
from harmony.losses.miners import MINING, mine
from harmony.losses.triplet import triplet_loss

__all__ = ["MARGIN_LOSSES", "MINING", "MarginClassifier", "MarginParams", "bct_influence_loss", "harmonic_triplet_loss",
           "margin_loss", "mine", "prototype_pull", "triplet_loss"]
