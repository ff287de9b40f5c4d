"""Batch-norm folding: the folded network embeds as the unfolded one, and only registered models fold."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from harmony.models.backbones import BACKBONES
from harmony.models.embedder import Embedder, EmbedderSpec
from harmony.models.fold import fold_batchnorm
from harmony.models.loading import load_encoder
from tests.models.test_zoo import SMALL


def _with_stats(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine terms: fresh ones (mean 0, var 1) fold to almost nothing."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return model.eval()


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_folds_to_the_same_features(name):
    torch.manual_seed(0)
    args, (h, w) = SMALL[name]
    body = _with_stats(BACKBONES[name](**args)[0])
    x = torch.randn(3, 3, h, w)
    with torch.inference_mode():
        want = body(x)
        folded = fold_batchnorm(copy.deepcopy(body))
        got = folded(x)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in body.modules())
    left = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert left < n_bn or n_bn == 0  # something folded wherever there was batch norm
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_small_cnn_folds_every_batch_norm_and_keeps_its_stage_indices():
    spec = EmbedderSpec(backbone="small_cnn", backbone_args={"widths": [8, 16, 16, 16], "stem_stride": 2},
                        image_size=64, dim=32)
    m = _with_stats(Embedder(spec))
    f = fold_batchnorm(copy.deepcopy(m))
    assert not any(isinstance(x, nn.BatchNorm2d) for x in f.modules())
    assert len(f.body) == len(m.body) and f.n_stages() == m.n_stages()
    x = torch.randint(0, 255, (4, 3, 64, 64), dtype=torch.uint8)
    with torch.inference_mode():
        torch.testing.assert_close(f.upper_features(f.lower_features(x, 2), 2), m.features(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(f(x), m(x), rtol=1e-4, atol=1e-5)


def test_a_training_model_is_left_alone_by_folding_only_at_load(reg, tmp_path):
    """load_encoder folds its own fresh copy; the checkpoint and load_embedder keep the batch norms."""
    from harmony.models.loading import load_embedder

    torch.manual_seed(1)
    spec = EmbedderSpec(backbone="small_cnn", backbone_args={"widths": [8, 16, 16, 16]}, image_size=64, dim=32)
    m = _with_stats(Embedder(spec), seed=3)
    path = tmp_path / "m.pt"
    torch.save(m.checkpoint(), path)
    reg.add_version("v1", kind="base", artifact=path, backbone="small_cnn", dim=32, meta={"spec": spec.as_dict()})
    enc = load_encoder(reg, "v1")
    assert not any(isinstance(x, nn.BatchNorm2d) for x in enc.model.modules())
    assert any(isinstance(x, nn.BatchNorm2d) for x in load_embedder(reg, "v1").modules())
    images = np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    with torch.inference_mode():
        want = m(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(enc.encode(images), want, rtol=1e-4, atol=1e-5)
