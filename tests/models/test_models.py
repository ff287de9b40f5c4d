
import numpy as np
import pytest
import torch

from harmony.errors import IntegrityError, InvalidInput
from harmony.models.backbones import build_backbone
from harmony.models.embedder import Embedder, EmbedderSpec, embedder_from_checkpoint
from harmony.models.encode import encode_array


def test_small_cnn_embeds_unit_vectors():
    m = Embedder(EmbedderSpec(dim=32)).eval()
    x = torch.randint(0, 256, (5, 3, 64, 64), dtype=torch.uint8)
    e = m(x)
    assert e.shape == (5, 32) and torch.allclose(e.norm(dim=1), torch.ones(5), atol=1e-5)


def test_inception_resnet_v1_at_160px():
    body, feat = build_backbone("inception_resnet_v1", {"blocks": [1, 1, 1]})
    assert feat == 1792
    m = Embedder(EmbedderSpec(backbone="inception_resnet_v1", backbone_args={"blocks": [1, 1, 1]}, image_size=160)).eval()
    e = m(torch.randint(0, 256, (2, 3, 160, 160), dtype=torch.uint8))
    assert e.shape == (2, 128)


def test_full_inception_resnet_v1_parameter_count():
    body, _ = build_backbone("inception_resnet_v1")
    n = sum(p.numel() for p in body.parameters())
    assert 20e6 < n < 25e6  # ~22.8M without the embedding layer, as in the common reimplementation


def test_checkpoint_roundtrip_weights_only(tmp_path):
    m = Embedder(EmbedderSpec(dim=16, backbone_args={"widths": [8, 8]})).eval()
    path = tmp_path / "m.pt"
    torch.save(m.checkpoint(), path)
    m2 = embedder_from_checkpoint(torch.load(path, weights_only=True))
    x = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    assert np.allclose(encode_array(m, x), encode_array(m2, x), atol=1e-6)
    with pytest.raises(IntegrityError):
        embedder_from_checkpoint({"format": "something else"})


def test_encode_resizes_and_validates():
    m = Embedder(EmbedderSpec(dim=8, backbone_args={"widths": [8]})).eval()
    x = np.random.default_rng(0).integers(0, 256, (3, 80, 80, 3), dtype=np.uint8)
    assert encode_array(m, x, batch_size=2).shape == (3, 8)
    with pytest.raises(InvalidInput, match="shape"):
        encode_array(m, x[..., 0])


def test_unknown_backbone():
    with pytest.raises(InvalidInput, match="unknown backbone"):
        build_backbone("vgg")
    with pytest.raises(InvalidInput, match="backbone_args"):
        build_backbone("small_cnn", {"depth": 3})
