"""ONNX versions: the adapter against an eager-torch twin of the same network, graph inspection
(layout, internal normalisation, sizes), the one-line refusals, CLI, and evaluation of an ONNX version."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("onnx", reason="onnx not installed (pip install 'harmony[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'harmony[onnx]')")

from harmony.errors import IntegrityError, InvalidInput
from harmony.models.loading import load_encoder, load_external_encoder
from harmony.models.onnx_model import inspect_onnx, pick_providers, register_onnx

SIZE = 16
IF_MEAN = IF_STD = 127.5  # insightface: (x - 127.5) / 127.5


class TinyFace(torch.nn.Module):
    """A face 'model' taking normalised NCHW floats, emitting (n, 6)."""

    def __init__(self, dim: int = 6) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class SelfNormalising(torch.nn.Module):
    """insightface-style graph: Sub/Mul on the raw 0..255 input before the network."""

    def __init__(self, net: TinyFace) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - 127.5) * 0.0078125)


class Nhwc(torch.nn.Module):
    def __init__(self, net: TinyFace) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 3, 1, 2))


class Rank3(torch.nn.Module):
    def __init__(self, net: TinyFace) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1, 2, 3)


def export(module: torch.nn.Module, path: Path, shape=(2, 3, SIZE, SIZE), dynamic: dict | None = None) -> Path:
    dynamic = {"x": {0: "n"}, "y": {0: "n"}} if dynamic is None else dynamic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(shape),), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes=dynamic or None, opset_version=17)
    return path


@pytest.fixture()
def net() -> TinyFace:
    torch.manual_seed(0)
    return TinyFace().eval()


def twin(module: torch.nn.Module, images, size: int, mean: float, std: float, *, bgr: bool = False,
         nhwc: bool = False) -> np.ndarray:
    """Obviously-correct encode: one image at a time, PIL resize, numpy normalisation, eager torch."""
    out = []
    for img in images:
        x = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR), dtype=np.float32)
        x = x[..., ::-1] if bgr else x
        x = (x - mean) / std
        t = torch.from_numpy(np.ascontiguousarray(x))
        with torch.no_grad():
            e = module((t if nhwc else t.permute(2, 0, 1))[None]).numpy()[0]
        out.append(e / np.linalg.norm(e))
    return np.stack(out)


def faces(n: int = 7, h: int = 20, w: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_insightface_defaults_match_the_twin(reg, net, tmp_path):
    path = export(net, tmp_path / "face.onnx")
    graph = inspect_onnx(path)
    assert (graph.layout, graph.static_size, graph.normalises_internally) == ("NCHW", SIZE, False)
    v = register_onnx(reg, "arc", path)
    assert (v.kind, v.dim, v.backbone) == ("external", 6, "onnx:face.onnx")
    assert v.meta == {"adapter": "onnx", "image_size": SIZE, "input_layout": "NCHW", "colour": "rgb",
                      "mean": [IF_MEAN] * 3, "std": [IF_STD] * 3, "normalises_internally": False}
    assert v.sha256 and (reg.root / v.artifact).read_bytes() == path.read_bytes()
    enc = load_encoder(reg, "arc", batch_size=3)
    assert (enc.dim, enc.image_size, enc.batch_size) == (6, SIZE, 3)
    batch = faces()
    got = enc.encode(batch)
    assert got.dtype == np.float32 and got.shape == (7, 6)
    np.testing.assert_allclose(got, twin(net, batch, SIZE, IF_MEAN, IF_STD), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    mixed = [batch[0], faces(1, SIZE, SIZE, 1)[0], batch[1][:10]]
    np.testing.assert_allclose(enc.encode(mixed), twin(net, mixed, SIZE, IF_MEAN, IF_STD), atol=1e-5)
    assert enc.encode(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, 6)
    with pytest.raises(InvalidInput, match="uint8"):
        enc.encode(batch.astype(np.float32))


def test_a_graph_that_normalises_itself_gets_raw_pixels(reg, net, tmp_path):
    path = export(SelfNormalising(net), tmp_path / "selfnorm.onnx")
    assert inspect_onnx(path).normalises_internally is True
    v = register_onnx(reg, "selfnorm", path)
    assert (v.meta["normalises_internally"], v.meta["mean"], v.meta["std"]) == (True, [0.0] * 3, [1.0] * 3)
    batch = faces()
    got = load_external_encoder(reg, "selfnorm").encode(batch)
    np.testing.assert_allclose(got, twin(SelfNormalising(net), batch, SIZE, 0.0, 1.0), atol=1e-5)
    # the same numbers as the bare network fed (x - 127.5) / 128: the graph's own Sub/Mul did it, once
    np.testing.assert_allclose(got, twin(net, batch, SIZE, 127.5, 128.0), atol=1e-5)


def test_nhwc_bgr_and_explicit_normalisation(reg, net, tmp_path):
    path = export(Nhwc(net), tmp_path / "nhwc.onnx", shape=(2, SIZE, SIZE, 3))
    v = register_onnx(reg, "bgr", path, colour="bgr", mean=(100, 110, 120), std=(50, 60, 70))
    assert (v.meta["input_layout"], v.meta["colour"], v.meta["normalises_internally"]) == ("NHWC", "bgr", False)
    batch = faces(5)
    from harmony.data.sources import ArraySource
    from harmony.models.pipeline import embed_source, input_pipeline

    # channel order is the pipeline's step (one place for every adapter); the encoder gets BGR from it
    got = embed_source(load_external_encoder(reg, "bgr"), ArraySource.of(batch), SIZE,
                       pipeline=input_pipeline(reg.get_version("bgr"))).vectors
    want = twin(Nhwc(net), batch, SIZE, np.array([100, 110, 120], np.float32), np.array([50, 60, 70], np.float32),
                bgr=True, nhwc=True)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_static_batch_of_one_and_dynamic_spatial_size(reg, net, tmp_path):
    one = export(net, tmp_path / "batch1.onnx", shape=(1, 3, SIZE, SIZE), dynamic={})
    register_onnx(reg, "one", one)
    enc = load_external_encoder(reg, "one")
    assert enc.batch_size == 1
    batch = faces(3)
    np.testing.assert_allclose(enc.encode(batch), twin(net, batch, SIZE, IF_MEAN, IF_STD), atol=1e-5)

    dyn = export(net, tmp_path / "dynamic.onnx", dynamic={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n"}})
    with pytest.raises(InvalidInput, match=r"dynamic\.onnx has a dynamic input shape \(n, 3, h, w\)") as err:
        register_onnx(reg, "dyn", dyn)
    assert "--image-size" in err.value.hint
    v = register_onnx(reg, "dyn", dyn, image_size=24)
    assert v.meta["image_size"] == 24
    np.testing.assert_allclose(load_external_encoder(reg, "dyn").encode(batch), twin(net, batch, 24, IF_MEAN, IF_STD),
                               atol=1e-5)
    with pytest.raises(InvalidInput, match="takes 16x16 input"):
        register_onnx(reg, "wrong-size", one, image_size=24)


def test_refusals_name_the_file_and_the_shape(reg, net, tmp_path):
    rank3 = export(Rank3(net), tmp_path / "rank3.onnx")
    with pytest.raises(InvalidInput, match=r"rank3\.onnx is not a face embedding model: its output is shaped "
                                           r"\(1, 2, 3\) for 1 image"):
        register_onnx(reg, "r3", rank3)
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n")
    with pytest.raises(InvalidInput, match=r"notes\.onnx is not an ONNX model"):
        register_onnx(reg, "txt", text)
    with pytest.raises(InvalidInput, match=r"missing\.onnx does not exist"):
        register_onnx(reg, "gone", tmp_path / "missing.onnx")
    path = export(net, tmp_path / "face.onnx")
    with pytest.raises(InvalidInput, match="--dim 128 but .* returns 6-D"):
        register_onnx(reg, "d", path, dim=128)
    with pytest.raises(InvalidInput, match="finite"):
        register_onnx(reg, "d", path, std=(0, 1, 1))
    with pytest.raises(InvalidInput, match="rgb or bgr"):
        register_onnx(reg, "d", path, colour="rbg")
    assert reg.list_versions() == []
    v = register_onnx(reg, "ok", path)
    (reg.root / v.artifact).write_bytes((reg.root / v.artifact).read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="altered"):
        load_encoder(reg, "ok")


def test_cuda_provider_when_onnxruntime_has_it(monkeypatch):
    import onnxruntime

    assert pick_providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert pick_providers(None) == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert pick_providers(None) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert pick_providers("cpu") == ["CPUExecutionProvider"]


def test_cli_add_external_onnx(reg, net, tmp_path):
    from harmony.cli.registry import app

    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        r = runner.invoke(app, ["add-external", *args, "--registry", str(reg.root)])
        assert r.exit_code == code and "Traceback" not in r.output, r.output
        return r.output

    path = export(net, tmp_path / "face.onnx")
    assert "registered external version arc (onnx:face.onnx, dim 6" in run("arc", "--adapter", "onnx", "--file",
                                                                           str(path))
    out = run("arc-bgr", "--adapter", "onnx", "--file", str(path), "--colour", "bgr", "--mean", "0,0,0",
              "--std", "255,255,255")
    assert "arc-bgr" in out
    meta = reg.get_version("arc-bgr").meta
    assert (meta["colour"], meta["mean"], meta["std"]) == ("bgr", [0.0] * 3, [255.0] * 3)
    text = tmp_path / "junk.onnx"
    text.write_bytes(b"\x00\x01junk")
    for args, says in ((["--file", str(text)], "junk.onnx is not an ONNX model"),
                       (["--file", str(export(Rank3(net), tmp_path / "r3.onnx"))], "shaped (1, 2, 3) for 1 image"),
                       ([], "needs --file")):
        out = run("bad", "--adapter", "onnx", *args, code=2)
        assert says in out and len(out.strip().splitlines()) <= 3, out  # one error line (rich may wrap it)


def test_evaluate_an_onnx_version(reg, net, tmp_path):
    from harmony.data.synthetic import SynthConfig, render_set
    from harmony.evaluation import evaluate, synthetic_set
    from harmony.metrics import val_at_far

    register_onnx(reg, "arc", export(net, tmp_path / "face.onnx"))
    fars = (0.1, 0.01)
    res = evaluate(reg, "arc", data=synthetic_set(6, 3), fars=fars, progress=None)
    images, labels = render_set(6, 3, "test", SynthConfig(image_size=SIZE, seed=0))
    want = val_at_far(twin(net, images, SIZE, IF_MEAN, IF_STD), labels, list(fars))
    assert res.versions[0].image_size == SIZE
    assert [x.val for x in res.versions[0].val] == pytest.approx([w.val for w in want])
    assert [e["version"] for e in reg.evaluations()] == ["arc"]
