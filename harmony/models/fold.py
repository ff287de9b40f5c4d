"""Batch-norm folded into the convolution before it, for inference on registered versions.

At inference a BatchNorm2d is a fixed per-channel affine map, so it can live inside the preceding
convolution's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``): one pass over the
activations fewer per layer. On 2 CPU cores batch norm is ~20% of a small CNN's forward time
(bench/bench_encoders.py measures the folded encoder against the unfolded one). The vectors agree
with the unfolded model's to float rounding (~1e-7).

Only registered, immutable models are folded (``harmony.models.loading.load_encoder``): a model
that is still training must keep its batch norms.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every ``Conv2d`` directly followed by a ``BatchNorm2d`` inside an ``nn.Sequential``, in
    place; the batch norm becomes ``nn.Identity`` so the Sequential keeps its indices (stage slicing,
    ``Embedder.lower_stages``, still addresses the same layers). Puts ``model`` in eval mode."""
    model.eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats \
                    and bn.num_features == conv.out_channels:
                channels_last = conv.weight.is_contiguous(memory_format=torch.channels_last)
                fused = fuse_conv_bn_eval(conv, bn)
                seq[i] = fused.to(memory_format=torch.channels_last) if channels_last else fused
                seq[i + 1] = nn.Identity()
    return model
