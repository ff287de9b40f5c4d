"""The one embedding pipeline: files, renders and arrays give the same vectors as a direct encode;
an unusable file is masked and reported (never fatal, never a zero row); one tick per batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harmony.data.images import load_images
from harmony.data.sources import ArraySource, FileSource
from harmony.errors import IntegrityError, InvalidInput
from harmony.models.embedder import Embedder, EmbedderSpec
from harmony.models.encode import TorchEncoder, encode_array
from harmony.models.encoder import encode_in_batches
from harmony.models.loading import load_encoder
from harmony.models.pipeline import Embeddings, FileEmbedder, embed_source, input_pipeline


def tiny(seed: int = 0, dim: int = 8, image_size: int = 24) -> Embedder:
    torch.manual_seed(seed)
    return Embedder(EmbedderSpec(dim=dim, image_size=image_size, backbone_args={"widths": [8]})).eval()


@pytest.fixture()
def files(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        p = tmp_path / "img" / f"{i}.png"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    paths[3].write_bytes(b"not an image")
    return paths


@pytest.fixture()
def registered(reg, tmp_path: Path) -> Embedder:
    model = tiny()
    path = tmp_path / "ckpt.pt"
    torch.save(model.checkpoint(), path)
    reg.add_version("v1", kind="base", artifact=path, backbone="small_cnn", dim=8,
                    meta={"spec": model.spec.as_dict()})
    return model


def test_file_embedder_masks_and_reports_unusable_files(reg, registered, files):
    ticks: list = []
    emb = FileEmbedder(reg, "v1", batch_size=3)
    out = emb.embed([str(p) for p in files], progress=ticks.append)
    assert out.ok.tolist() == [i != 3 for i in range(7)] and out.vectors.shape == (6, 8)
    [bad] = out.unusable
    assert bad.path == str(files[3]) and "cannot read image" in bad.reason
    decoded = load_images(files, 24)  # the twin: decode every file, one encode of the usable ones
    np.testing.assert_allclose(out.vectors, encode_array(registered, decoded.images), atol=1e-5)
    assert [(t.done, t.total) for t in ticks] == [(3, 7), (6, 7), (7, 7)] and ticks[-1].finished
    assert emb.read_s > 0 and emb.encode_s > 0
    vecs, ok = emb([str(files[3])])  # the backfill's embed_fn: a batch of nothing usable is not an error
    assert vecs.shape == (0, 8) and ok.tolist() == [False]


def test_rows_selects_usable_inputs_by_mask_or_position():
    rng = np.random.default_rng(1)
    ok = np.array([True, False, True, True, False, True])
    vectors = rng.standard_normal((4, 3)).astype(np.float32)
    e = Embeddings(vectors, ok)
    full = np.full((6, 3), np.nan, np.float32)  # the slow twin: scatter into an (n, d) table
    full[ok] = vectors
    np.testing.assert_array_equal(e.rows(ok), vectors)
    np.testing.assert_array_equal(e.rows(np.array([5, 0, 2])), full[[5, 0, 2]])
    assert e.rows(np.zeros(6, bool)).shape == (0, 3)
    with pytest.raises(InvalidInput, match="unusable"):
        e.rows(np.array([1]))


def test_array_source_equals_direct_encode_and_one_batch_loop():
    model = tiny(seed=2)
    images = np.random.default_rng(3).integers(0, 256, (10, 24, 24, 3), dtype=np.uint8)
    out = embed_source(TorchEncoder(model), ArraySource.of(images), 24, batch_size=4)
    assert out.ok.all() and out.unusable == ()
    np.testing.assert_allclose(out.vectors, encode_array(model, images, batch_size=64), atol=1e-5)
    calls: list[int] = []

    def forward(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return batch.reshape(len(batch), -1)[:, :5].astype(np.float32) + 1.0

    got = encode_in_batches(forward, images, 4, 5)
    want = images.reshape(10, -1)[:, :5].astype(np.float32) + 1.0
    np.testing.assert_allclose(got, want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-6)
    assert calls == [4, 4, 2]
    with pytest.raises(InvalidInput, match="expected"):
        encode_in_batches(forward, images, 4, 6)


def test_input_pipeline_and_load_encoder_check_the_record(reg, registered, tmp_path):
    v = reg.get_version("v1")
    p = input_pipeline(v)
    assert (p.image_size, p.align) == (24, None)
    enc = load_encoder(reg, "v1")
    assert (enc.dim, enc.image_size) == (8, 24)
    wrong = tmp_path / "wrong.pt"
    torch.save(tiny(dim=4).checkpoint(), wrong)
    reg.add_version("liar", kind="base", artifact=wrong, backbone="small_cnn", dim=8)
    with pytest.raises(IntegrityError, match="recorded as 8-D"):
        load_encoder(reg, "liar")
    reg.add_version("aligned", kind="base", artifact=wrong, backbone="small_cnn", dim=4, meta={"align": "dlib-5pt"})
    with pytest.raises(InvalidInput, match="alignment"):
        input_pipeline(reg.get_version("aligned"))


def test_file_source_reports_each_unusable_file(files):
    d = FileSource(tuple(str(p) for p in files)).load(2, 5, 16)
    assert d.ok.tolist() == [True, False, True] and d.images.shape == (2, 16, 16, 3)
    assert [u.path for u in d.unusable] == [str(files[3])]
