"""A version's recorded input pipeline (alignment, size, colour order, normalisation), applied by
the one embedding pipeline: aligned versions read each photo at full resolution and detect there;
a photo with no face is masked with its reason like an unreadable file; the cache follows the
pipeline; ``add-external --align`` records it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from harmony.align.spec import AlignSpec
from harmony.data.images import Unusable, load_image, read_rgb
from harmony.data.sources import ArraySource, FileSource
from harmony.errors import InvalidInput
from harmony.models.dlib_model import register_dlib
from harmony.models.embedder import Embedder, EmbedderSpec
from harmony.models.pipeline import (DLIB_DETECT_ALIGN, FileEmbedder, InputPipeline, embed_source,
                                     input_pipeline, load_chunk)
from tests.realfaces.photos import NO_FACE, PORTRAIT, variant

FACENET = AlignSpec(style="facenet", size=24, margin=16)
HAVE_DLIB = importlib.util.find_spec("dlib") is not None and importlib.util.find_spec("face_recognition_models")
needs_dlib = pytest.mark.skipif(not HAVE_DLIB, reason="needs pip install 'harmony[dlib]'")


class Recorder:
    """An encoder that keeps what it was given (mean pixel per channel as its 'embedding')."""

    dim = 3
    image_size = 24

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def encode(self, images: np.ndarray) -> np.ndarray:
        self.seen.append(np.asarray(images).copy())
        v = np.asarray(images, np.float32).mean(axis=(1, 2)) + 1.0
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def add_trained(reg, name: str, folder: Path, align: AlignSpec | None = None, seed: int = 0) -> Embedder:
    torch.manual_seed(seed)
    m = Embedder(EmbedderSpec(dim=8, image_size=24, backbone_args={"widths": [8]})).eval()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{seed}.pt"
    torch.save(m.checkpoint(), path)
    meta = {"spec": m.spec.as_dict()} | ({"align": align.as_dict()} if align else {})
    reg.add_version(name, kind="base", artifact=path, backbone="small_cnn", dim=8, meta=meta)
    return m


# -- the record ---------------------------------------------------------------------------------

def test_pipeline_round_trips_and_refuses_unknown_keys():
    p = InputPipeline(112, FACENET, "bgr", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), False)
    assert InputPipeline.from_dict(json.loads(json.dumps(p.as_dict()))) == p
    assert InputPipeline.from_dict(p.meta()) == p and "mean" not in InputPipeline(160).meta()
    with pytest.raises(InvalidInput, match="unknown input pipeline key.*colour_order"):
        InputPipeline.from_dict({"image_size": 112, "colour_order": "bgr"})
    with pytest.raises(InvalidInput, match="colour order"):
        InputPipeline(112, colour="grey")


def test_input_pipeline_reads_each_kind_of_record(reg, tmp_path):
    add_trained(reg, "plain", tmp_path)
    add_trained(reg, "fn", tmp_path, FACENET, seed=1)
    assert input_pipeline(reg.get_version("plain")) == InputPipeline(24)  # normalises internally
    assert input_pipeline(reg.get_version("fn")) == InputPipeline(24, FACENET)
    meta = {"adapter": "torchscript", "image_size": 112, "mean": [0.5] * 3, "std": [0.5] * 3, "colour": "bgr"}
    reg.add_version("ts", kind="external", artifact=reg.artifact_path("plain"), backbone="x", dim=8, meta=meta)
    assert input_pipeline(reg.get_version("ts")) == InputPipeline(112, None, "bgr", (0.5,) * 3, (0.5,) * 3, False)
    # a dlib version registered in detect mode before alignment was recorded reads as dlib-chip 150
    reg.add_version("old-dlib", kind="external", artifact=reg.artifact_path("plain"), backbone="dlib", dim=128,
                    meta={"adapter": "dlib", "mode": "detect", "image_size": 150})
    assert input_pipeline(reg.get_version("old-dlib")).align == DLIB_DETECT_ALIGN
    assert DLIB_DETECT_ALIGN.style == "dlib-chip" and DLIB_DETECT_ALIGN.size == 150


@needs_dlib
def test_dlib_registration_records_its_pipeline(reg):
    detect, aligned = register_dlib(reg, "d", mode="detect"), register_dlib(reg, "a", mode="aligned")
    assert detect.meta["align"] == DLIB_DETECT_ALIGN.as_dict() and "align" not in aligned.meta
    assert input_pipeline(detect) == InputPipeline(150, DLIB_DETECT_ALIGN)
    assert input_pipeline(aligned) == InputPipeline(150)


# -- the decoder at full resolution ------------------------------------------------------------

def test_read_rgb_is_full_resolution_upright_and_names_a_bad_file(tmp_path):
    photo = tmp_path / "wide.jpg"
    variant(scale=0.5, canvas=(900, 600), at=(10, 20)).save(photo, quality=95)
    assert read_rgb(photo).shape == (600, 900, 3) and read_rgb(photo).dtype == np.uint8
    rotated = tmp_path / "exif.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    Image.open(photo).save(rotated, exif=exif, quality=95)
    assert read_rgb(rotated).shape == (900, 600, 3)
    grey = tmp_path / "grey.png"
    Image.open(photo).convert("L").save(grey)
    assert read_rgb(grey).shape == (600, 900, 3)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(InvalidInput, match=f"cannot read image {bad}"):
        read_rgb(bad)
    np.testing.assert_array_equal(load_image(photo, 64), load_image(photo, 64))  # unchanged path


# -- alignment in the pipeline ----------------------------------------------------------------

def test_colour_order_bgr_reverses_channels_before_the_network():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
    enc = Recorder()
    embed_source(enc, ArraySource.of(imgs), 24, pipeline=InputPipeline(24, colour="bgr"), batch_size=3)
    np.testing.assert_array_equal(np.concatenate(enc.seen), imgs[..., ::-1])
    enc = Recorder()
    embed_source(enc, ArraySource.of(imgs), 24, pipeline=InputPipeline(24))
    np.testing.assert_array_equal(np.concatenate(enc.seen), imgs)


@needs_dlib
def test_aligned_pipeline_detects_at_full_resolution_and_masks_no_face(tmp_path):
    """Twin: align_photo on the full-resolution decode, resized to the model's size, is what the
    encoder receives; the cat photo and an unreadable file are masked, each with its reason."""
    from harmony.align.crop import align_photo
    from harmony.models.encoder import resize

    small = tmp_path / "small-face.jpg"
    variant(scale=0.5, canvas=(900, 700), at=(420, 300)).save(small, quality=92)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    paths = (str(small), str(NO_FACE), str(bad), str(PORTRAIT))
    spec = AlignSpec(style="dlib-chip", size=150, upsample=(1, 2))
    d = load_chunk(FileSource(paths), 0, 4, 24, InputPipeline(24, spec))
    assert d.ok.tolist() == [True, False, False, True] and d.images.shape == (2, 24, 24, 3)
    assert d.unusable[0] == Unusable(str(NO_FACE), f"no face found in {NO_FACE}")
    assert d.unusable[1].path == str(bad) and "cannot read image" in d.unusable[1].reason
    for got, p in zip(d.images, (small, PORTRAIT)):
        want = resize(align_photo(np.asarray(Image.open(p).convert("RGB")), spec)[0], 24)
        np.testing.assert_array_equal(got, want)
    # without alignment the same files decode at 24 px and the cat is 'usable': the old behaviour
    plain = load_chunk(FileSource(paths), 0, 4, 24, InputPipeline(24))
    assert plain.ok.tolist() == [True, True, False, True]


@needs_dlib
def test_file_embedder_applies_the_versions_alignment(reg, tmp_path):
    """Two versions of the same network, one aligned (facenet crops) and one not: the aligned one
    masks the photo without a face and embeds the crop; never a zero row."""
    from harmony.align.crop import align_photo
    from harmony.models.encode import encode_array
    from harmony.models.encoder import resize

    model = add_trained(reg, "fn", tmp_path / "a", FACENET)
    add_trained(reg, "raw", tmp_path / "b")
    paths = [str(PORTRAIT), str(NO_FACE)]
    out = FileEmbedder(reg, "fn").embed(paths)
    assert out.ok.tolist() == [True, False] and out.vectors.shape == (1, 8)
    assert out.unusable == (Unusable(str(NO_FACE), f"no face found in {NO_FACE}"),)
    crop = np.array(resize(align_photo(np.asarray(Image.open(PORTRAIT).convert("RGB")), FACENET)[0], 24))
    np.testing.assert_allclose(out.vectors, encode_array(model, crop[None]), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    plain = FileEmbedder(reg, "raw").embed(paths)
    assert plain.ok.all()


@needs_dlib
def test_cache_key_follows_the_pipeline(reg, tmp_path, monkeypatch):
    """The same version and image set under another pipeline never reads the old vectors (names
    are never reused in a registry, but a pipeline read differently must not meet old files); a
    plain pipeline keeps the cache's earlier file names."""
    from harmony.evaluation import cache, embed_cached
    from harmony.evaluation.cache import cache_path

    src = FileSource.of([PORTRAIT, NO_FACE, PORTRAIT])
    add_trained(reg, "v", tmp_path / "a", FACENET)
    v = reg.get_version("v")
    first = embed_cached(reg, "v", src)
    assert first.ok.tolist() == [True, False, True] and not first.from_cache
    assert first.path == cache_path(reg.root, "v", v.sha256, src, 24, InputPipeline(24, FACENET))
    assert first.path != cache_path(reg.root, "v", v.sha256, src, 24)
    assert embed_cached(reg, "v", src).from_cache
    monkeypatch.setattr(cache, "input_pipeline", lambda _: InputPipeline(24))  # read without alignment
    second = embed_cached(reg, "v", src)
    assert not second.from_cache and second.ok.all() and second.path != first.path
    assert InputPipeline(24).cache_tag == "" and second.path == cache_path(reg.root, "v", v.sha256, src, 24)
    tags = {InputPipeline(24, FACENET).cache_tag, InputPipeline(24, DLIB_DETECT_ALIGN).cache_tag,
            InputPipeline(24, colour="bgr").cache_tag, InputPipeline(24, mean=(0.5,) * 3, std=(0.5,) * 3).cache_tag}
    assert len(tags) == 4 and "" not in tags


# -- registering with an aligner ------------------------------------------------------------

class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_add_external_align_option_records_the_aligner(tmp_path):
    from harmony.cli.registry import app
    from harmony.registry import Registry

    ts = tmp_path / "m.ts"
    torch.jit.script(_Tiny().eval()).save(str(ts))
    root = str(tmp_path / "registry")
    run = CliRunner().invoke
    common = ["--adapter", "torchscript", "--file", str(ts), "--image-size", "112", "--registry", root]
    assert run(app, ["add-external", "fn", *common, "--align", "facenet"]).exit_code == 0
    assert run(app, ["add-external", "chip", *common, "--align", "dlib-chip", "--align-size", "150"]).exit_code == 0
    assert run(app, ["add-external", "crops", *common, "--align", "none"]).exit_code == 0
    reg = Registry.open(root)
    assert input_pipeline(reg.get_version("fn")).align == AlignSpec(style="facenet", size=112)
    assert input_pipeline(reg.get_version("chip")).align == AlignSpec(style="dlib-chip", size=150)
    assert input_pipeline(reg.get_version("crops")).align is None and "align" not in reg.get_version("crops").meta
    r = run(app, ["add-external", "x", *common, "--align-size", "150"])
    assert r.exit_code == 2 and "--align-size needs --align" in r.output
    r = run(app, ["add-external", "d", "--adapter", "dlib", "--align", "facenet", "--registry", root])
    assert r.exit_code == 2 and "--mode" in r.output


def test_crop_encoder_applies_the_colour_step_only():
    import numpy as np

    from harmony.models.pipeline import CropEncoder, InputPipeline

    class Spy:
        dim, image_size = 3, 4

        def __init__(self):
            self.seen = None

        def encode(self, images):
            self.seen = np.asarray(images)
            return np.ones((len(images), 3), np.float32) / np.sqrt(3)

    imgs = np.zeros((2, 4, 4, 3), np.uint8)
    imgs[..., 0] = 200  # red
    spy = Spy()
    CropEncoder(spy, InputPipeline(4, colour="bgr")).encode(imgs)
    assert (spy.seen[..., 2] == 200).all() and (spy.seen[..., 0] == 0).all()
    CropEncoder(spy, InputPipeline(4)).encode(imgs)
    assert (spy.seen[..., 0] == 200).all()
