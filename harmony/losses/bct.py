"""Backward-compatible training's influence loss (Shen et al., CVPR 2020).

v1 here is a metric-learning model without a classifier, so, as BCT prescribes for that case, its
"classifier" is the matrix of v1 class means (L2-normalised prototypes). The new embedding is
scored against it with a scaled cosine softmax and trained with cross-entropy on the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bct_influence_loss(new: torch.Tensor, class_index: torch.Tensor, old_classifier: torch.Tensor,
                       scale: float = 16.0) -> torch.Tensor:
    """new (B, d) unit vectors, class_index (B,) rows of old_classifier (n_classes, d)."""
    logits = scale * new @ old_classifier.T
    return F.cross_entropy(logits, class_index)
