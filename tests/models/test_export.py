"""export-model: a trained version as ONNX / TorchScript + pipeline sidecar; registered back as an
external version it gives the trained version's embeddings, and it can be v1 of a harmonic run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from harmony.cli.registry import app
from harmony.data.synthetic import SynthConfig, render_set
from harmony.errors import InvalidInput
from harmony.models.embedder import Embedder, EmbedderSpec
from harmony.models.export import export_model
from harmony.models.loading import load_encoder
from harmony.models.sidecar import SIDECAR_FORMAT

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

SIZE, DIM = 32, 16
runner = CliRunner()
FORMATS = [pytest.param("onnx", marks=pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("onnx", "onnxruntime")),
    reason="onnx/onnxruntime not installed (pip install 'harmony[onnx]')")), "torchscript"]


def cli(reg, *args: str, code: int = 0) -> str:
    r = runner.invoke(app, [*args, "--registry", str(reg.root)])
    assert r.exit_code == code and "Traceback" not in r.output, r.output
    return " ".join(r.output.split())  # rich wraps long lines


@pytest.fixture()
def trained(reg, tmp_path: Path) -> Embedder:
    """A harmony Embedder registered the way training registers one (spec in meta)."""
    torch.manual_seed(0)
    model = Embedder(EmbedderSpec(backbone="small_cnn", backbone_args={"widths": [8, 16]}, dim=DIM,
                                  image_size=SIZE, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))).eval()
    path = tmp_path / "ckpt" / "model.pt"
    path.parent.mkdir()
    torch.save(model.checkpoint(), path)
    reg.add_version("v1", kind="base", artifact=path, backbone="small_cnn", dim=DIM,
                    meta={"spec": model.spec.as_dict()})
    return model


def faces(n: int = 13) -> np.ndarray:
    images, _ = render_set(max(n // 3, 1) + 1, 3, "test", SynthConfig(image_size=SIZE, seed=0))
    return images[:n]


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_model_registered_back_gives_the_same_embeddings(reg, trained, tmp_path, fmt):
    out = tmp_path / "out" / f"v1.{fmt}"
    said = cli(reg, "export-model", "v1", "--format", fmt, "--out", str(out))
    squeezed = said.replace(" ", "")  # rich may break a long path anywhere
    assert f"wrote{out}" in squeezed and f"--adapter{fmt}" in squeezed
    side = json.loads(Path(f"{out}.json").read_text())
    assert side["format"] == SIDECAR_FORMAT and side["model_format"] == fmt
    assert (side["image_size"], side["colour"], side["input_layout"], side["dim"]) == (SIZE, "rgb", "NCHW", DIM)
    assert (side["version"], side["sha256"]) == ("v1", reg.get_version("v1").sha256)
    assert side["internal_mean"] == pytest.approx([0.4, 0.5, 0.6])

    cli(reg, "add-external", "v1-ext", "--adapter", fmt, "--file", str(out))  # no pipeline flags: the sidecar
    v = reg.get_version("v1-ext")
    assert (v.kind, v.dim, v.meta["image_size"]) == ("external", DIM, SIZE)
    assert v.meta["exported_from"] == {"version": "v1", "sha256": reg.get_version("v1").sha256}
    images = faces()
    want = load_encoder(reg, "v1").encode(images)
    ext = load_encoder(reg, "v1-ext", batch_size=5)  # 13 images: batches of 5, 5, 3 through the dynamic batch axis
    got = ext.encode(images)
    assert got.shape == want.shape == (13, DIM)
    assert np.abs(got - want).max() < 1e-5


def test_onnx_export_without_its_sidecar_is_read_from_the_graph(reg, trained, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'harmony[onnx]')")
    e = export_model(reg, "v1", "onnx", tmp_path / "v1.onnx")
    e.sidecar.unlink()
    cli(reg, "add-external", "bare", "--adapter", "onnx", "--file", str(e.path))
    meta = reg.get_version("bare").meta
    assert (meta["normalises_internally"], meta["mean"], meta["std"]) == (True, [0.0] * 3, [1.0] * 3)
    assert "exported_from" not in meta
    images = faces(6)
    assert np.abs(load_encoder(reg, "bare").encode(images) - load_encoder(reg, "v1").encode(images)).max() < 1e-5


def test_export_refusals(reg, trained, tmp_path):
    from tests.models.test_external import TinyEmbed

    ts = tmp_path / "legacy.ts"
    torch.jit.script(TinyEmbed()).save(str(ts))
    cli(reg, "add-external", "legacy", "--adapter", "torchscript", "--file", str(ts), "--image-size", "16")
    assert "is external" in cli(reg, "export-model", "legacy", "--format", "torchscript", "--out",
                                str(tmp_path / "x.ts"), code=2)
    assert "nope" in cli(reg, "export-model", "nope", "--format", "onnx", "--out", str(tmp_path / "x.onnx"), code=2)
    with pytest.raises(InvalidInput, match="is a folder"):
        export_model(reg, "v1", "torchscript", tmp_path)
    with pytest.raises(InvalidInput, match="unknown export format"):
        export_model(reg, "v1", "tflite", tmp_path / "x")
    side = tmp_path / "legacy.ts.json"
    side.write_text(json.dumps({"format": SIDECAR_FORMAT, "model_format": "onnx"}))
    assert "describes a onnx model" in cli(reg, "add-external", "l2", "--adapter", "torchscript", "--file", str(ts),
                                           code=2)
    assert not (tmp_path / "x.ts").exists() and sorted(v.name for v in reg.list_versions()) == ["legacy", "v1"]


@pytest.mark.filterwarnings("ignore::harmony.metrics.MetricsWarning")
def test_an_exported_onnx_version_is_compatible_with_its_source_and_is_a_v1(reg, trained, tmp_path, micro_recipe):
    """Either side of an evaluation, and v1 of `train harmonic --from` (it embeds through its own pipeline)."""
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'harmony[onnx]')")
    from harmony.evaluation import evaluate, synthetic_set
    from harmony.models.onnx_model import register_onnx
    from harmony.recipe import load_recipe
    from harmony.training.harmonic import train_harmonic

    register_onnx(reg, "v1-onnx", export_model(reg, "v1", "onnx", tmp_path / "v1.onnx").path)
    res = evaluate(reg, "v1-onnx", "v1", synthetic_set(8, 3), fars=(0.1, 0.01), progress=None)
    assert all(res.compatible.values())
    for row in res.compat.rows:
        assert row.new_old.val == pytest.approx(row.old_old.val, abs=1e-9)
        assert row.new_new.val == pytest.approx(row.old_old.val, abs=1e-9)

    v2 = train_harmonic(reg, load_recipe(micro_recipe), "v2", from_version="v1-onnx")
    assert reg.get_version("v2").parent == "v1-onnx"
    rows = reg.compatibility("v2", "v1-onnx")
    assert sorted(c.far for c in rows) == sorted(v2.compatible) == [0.01, 0.1]
    assert {c.old for c in rows} == {"v1-onnx"}
