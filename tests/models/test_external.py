"""External versions: the TorchScript adapter against a hand-written twin, and dlib's face model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harmony.data.images import Unusable
from harmony.data.sources import ArraySource
from harmony.errors import IntegrityError, InvalidInput
from harmony.models.dlib_model import DlibEncoder, register_dlib
from harmony.models.loading import load_external_encoder
from harmony.models.pipeline import Embeddings, embed_source, input_pipeline
from harmony.models.torchscript import TorchScriptEncoder, register_torchscript
from harmony.registry.manifests import dlib_model_problems

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


class TinyEmbed(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[TinyEmbed, Path]:
    torch.manual_seed(0)
    model = TinyEmbed().eval()
    path = tmp_path / "tiny.ts"
    torch.jit.script(model).save(str(path))
    return model, path


def _twin(model: torch.nn.Module, images: list[np.ndarray], size: int) -> np.ndarray:
    """Obviously-correct encode: one image at a time, eager module, numpy normalisation."""
    out = []
    for img in images:
        x = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
        x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
        with torch.no_grad():
            e = model(torch.from_numpy(x).permute(2, 0, 1)[None]).numpy()[0]
        out.append(e / np.linalg.norm(e))
    return np.stack(out)


def test_torchscript_round_trip(reg, tiny):
    model, path = tiny
    v = register_torchscript(reg, "legacy-ts", path, image_size=16, mean=MEAN, std=STD)
    assert (v.kind, v.dim, v.backbone) == ("external", 6, "torchscript:tiny.ts")
    assert v.meta == {"adapter": "torchscript", "image_size": 16, "mean": list(MEAN), "std": list(STD)}
    enc = load_external_encoder(reg, "legacy-ts")
    assert (enc.dim, enc.image_size) == (6, 16)
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (7, 20, 24, 3), dtype=np.uint8)
    enc.batch_size = 3
    got = enc.encode(batch)
    assert got.dtype == np.float32 and got.shape == (7, 6)
    np.testing.assert_allclose(got, _twin(model, list(batch), 16), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    mixed = [batch[0], rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), batch[1][:10]]
    np.testing.assert_allclose(enc.encode(mixed), _twin(model, mixed, 16), atol=1e-5)
    assert enc.encode(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, 6)
    with pytest.raises(InvalidInput, match="uint8"):
        enc.encode(batch.astype(np.float32))


def test_torchscript_rejections(reg, tiny, tmp_path, add):
    _, path = tiny
    with pytest.raises(InvalidInput, match="--dim 128 but the module returns 6"):
        register_torchscript(reg, "ts", path, image_size=16, dim=128)
    not_ts = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, not_ts)
    with pytest.raises(InvalidInput, match="not a TorchScript file"):
        register_torchscript(reg, "ts", not_ts, image_size=16)
    with pytest.raises(InvalidInput, match="std"):
        register_torchscript(reg, "ts", path, image_size=16, std=(0, 1, 1))
    assert reg.list_versions() == []
    v = register_torchscript(reg, "ts", path, image_size=16)
    (reg.root / v.artifact).write_bytes((reg.root / v.artifact).read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="altered"):
        load_external_encoder(reg, "ts")
    add("v1")
    with pytest.raises(InvalidInput, match="not an external version"):
        load_external_encoder(reg, "v1")


def _require_dlib() -> None:
    pytest.importorskip("dlib", reason="dlib not installed (pip install 'harmony[dlib]')")
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models not installed (pip install 'harmony[dlib]')")


def _portrait() -> np.ndarray:
    """A real face photograph that ships with matplotlib (Grace Hopper)."""
    from matplotlib import cbook

    try:
        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    except (OSError, ValueError):
        pytest.skip("matplotlib sample data not installed")
    return np.asarray(Image.open(path).convert("RGB"))


def test_dlib_aligned_is_deterministic_unit_norm(reg):
    _require_dlib()
    v = register_dlib(reg, "dlib-aligned", mode="aligned")
    assert (v.dim, v.meta["mode"]) == (128, "aligned")
    manifest = json.loads((reg.root / v.artifact).read_text())
    assert set(manifest["files"]) == {"recognition", "shape_predictor"}
    assert [r.status for r in reg.verify()] == ["ok"]
    enc = load_external_encoder(reg, "dlib-aligned")
    rng = np.random.default_rng(1)
    chips = rng.integers(0, 256, (3, 150, 150, 3), dtype=np.uint8)
    a, b = enc.encode(chips), enc.encode(list(chips))
    assert a.shape == (3, 128) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    assert np.abs(a[0] - a[1]).max() > 1e-3


def test_dlib_detect_matches_dlib_pipeline(reg):
    _require_dlib()
    import dlib

    from harmony.registry.manifests import dlib_model_files

    img = _portrait()
    files = dlib_model_files()
    detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(files["shape_predictor"]))
    model = dlib.face_recognition_model_v1(str(files["recognition"]))
    box = detector(img, 1)[0]
    chip = dlib.get_face_chip(img, predictor(img, box), size=150)
    ref = np.array(model.compute_face_descriptor(chip), dtype=np.float32)
    ref /= np.linalg.norm(ref)

    register_dlib(reg, "dlib-detect", mode="detect")
    enc = load_external_encoder(reg, "dlib-detect")
    pipe = input_pipeline(reg.get_version("dlib-detect"))  # detection is the version's pipeline, not the encoder's

    def through(*imgs: np.ndarray) -> Embeddings:
        return embed_source(enc, ArraySource.of(np.stack(imgs)), 150, pipeline=pipe)

    got = through(img).vectors[0]
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(DlibEncoder("aligned").encode(chip[None])[0], ref, atol=1e-5)
    mirrored = through(np.ascontiguousarray(img[:, ::-1])).vectors[0]
    stranger = DlibEncoder("aligned").encode(np.full((1, 150, 150, 3), 128, np.uint8))[0]
    assert np.sum((got - mirrored) ** 2) < np.sum((got - stranger) ** 2)
    noise = np.random.default_rng(2).integers(0, 256, img.shape, dtype=np.uint8)
    out = through(img, noise)  # masked and named, never fatal
    assert out.ok.tolist() == [True, False] and out.vectors.shape == (1, 128)
    assert out.unusable == (Unusable("image #1", "no face found in image #1"),)


def test_dlib_manifest_catches_changed_model(reg, tmp_path):
    _require_dlib()
    v = register_dlib(reg, "dlib-aligned")
    manifest = json.loads((reg.root / v.artifact).read_text())
    manifest["files"]["recognition"]["sha256"] = "0" * 64
    fake = tmp_path / "manifest.json"
    fake.write_text(json.dumps(manifest))
    assert dlib_model_problems(fake) and dlib_model_problems(fake)[0].startswith("altered")
    assert dlib_model_problems(reg.root / v.artifact) == []


def test_encoder_protocol_shape(tiny):
    _, path = tiny
    enc = TorchScriptEncoder(path, image_size=8, mean=MEAN, std=STD, dim=6)
    with pytest.raises(InvalidInput, match=r"\(n, h, w, 3\)"):
        enc.encode(np.zeros((8, 8, 3), np.uint8))
