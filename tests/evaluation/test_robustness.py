"""`harmony eval robustness` (FaceNet Table 4): the degradations, the measurement against a direct
computation, the CLI's table/JSON/PNG and its one-line errors; `harmony eval` still works as a group."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from typer.testing import CliRunner

from harmony.cli.main import app
from harmony.errors import InvalidInput
from harmony.evaluation import synthetic_set
from harmony.evaluation.robustness import (
    Condition,
    check_pixels,
    check_qualities,
    jpeg,
    measure,
    parse_ints,
    shrink,
    side_of,
    source_size,
)
from harmony.metrics import val_at_far
from harmony.models.encode import raw_pixels
from harmony.models.encoder import resize
from harmony.models.pipeline import InputPipeline

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [*map(str, args)], catch_exceptions=False, terminal_width=200)


@dataclass
class PixelEncoder:
    """Raw pixels as an encoder (no learning), recording the image sizes it is shown."""

    image_size: int = 16
    seen: list | None = None

    @property
    def dim(self) -> int:
        return self.image_size * self.image_size * 3

    def encode(self, images: np.ndarray) -> np.ndarray:
        if self.seen is not None:
            self.seen.append(images.shape[1:3])
        return raw_pixels(images)


def faces(n=4, size=64):
    from harmony.data.synthetic import SynthConfig, render_set

    return render_set(n, 1, "test", SynthConfig(image_size=size))[0]


def test_jpeg_error_grows_as_quality_drops():
    x = faces()
    err = {q: np.abs(jpeg(x, q).astype(int) - x).mean() for q in (10, 50, 95)}
    assert jpeg(x, 50).shape == x.shape and jpeg(x, 50).dtype == np.uint8
    assert err[10] > err[50] > err[95] > 0


def test_shrink_loses_detail_and_returns_the_model_size():
    x = faces(size=64)
    assert side_of(1600) == 40 and side_of(65536) == 256
    small, same = shrink(x, 64, 32), shrink(x, 64 * 64, 32)  # 8x8 face vs the full 64x64 source
    ref = np.stack([resize(i, 32) for i in x])
    assert small.shape == (4, 32, 32, 3) and np.array_equal(same, ref)
    assert np.abs(small.astype(int) - ref).mean() > 5


def test_lists_are_checked():
    assert parse_ints("10, 20,10", "--jpeg", (1,)) == (10, 20) and parse_ints(None, "--jpeg", (7,)) == (7,)
    for bad in ("10,x", ""):
        with pytest.raises(InvalidInput):
            parse_ints(bad, "--jpeg", (1,))
    with pytest.raises(InvalidInput, match="outside 1..100"):
        check_qualities((10, 101))
    with pytest.raises(InvalidInput, match="below 16"):
        check_pixels((1600, 15))
    assert source_size(32, (1600, 100)) == 40 and source_size(64, (100,)) == 64


def test_measure_equals_a_direct_computation():
    data = synthetic_set(5, 3)
    enc = PixelEncoder(16, seen=[])
    res = measure(enc, InputPipeline(16), data, qualities=(20,), pixels=(64, 1024), far=0.1, version="raw")
    assert res.source_size == 32 and res.input_size == 16  # 1024 px = 32x32 sets the read size
    assert {s for s in enc.seen} == {(16, 16)}  # the network only ever sees its own input size
    crops = data.source.load(0, data.source.n, 32).images
    labels = np.asarray(data.labels)
    for cond in (Condition("reference"), Condition("jpeg", 20), Condition("pixels", 64)):
        want = val_at_far(raw_pixels(cond.apply(crops, 16)), labels, 0.1).val
        got = next(r for r in res.rows if r.condition == cond).val.val
        assert got == want, cond
    full = res.of("pixels")[1]  # 32x32 = the source itself: exactly the reference
    assert full.val.val == res.reference.val.val and full.delta == 0.0
    assert [r.condition.kind for r in res.rows] == ["reference", "jpeg", "pixels", "pixels"]
    assert any("reach the model's input" in n for n in res.notes)


def test_cli_table_json_and_plot(tmp_path, reg, add_tiny):
    add_tiny("v1")
    png = tmp_path / "table4.png"
    base = ("eval", "robustness", "--version", "v1", "--synthetic", 4, "--per-identity", 3, "--jpeg", "20,90",
            "--pixels", "256,1600", "--far", 0.1, "--registry", reg.root)
    r = invoke(*base, "--json", "--plot", png)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [x["value"] for x in out["jpeg"]] == [20, 90] and [x["value"] for x in out["pixels"]] == [256, 1600]
    assert out["input_size"] == 32 and out["source_size"] == 40 and out["n_images"] == 12
    assert 0.0 <= out["reference"] <= 1.0 and png.read_bytes()[:4] == b"\x89PNG"
    r = invoke("eval", "robustness", "--version", "v1", "--synthetic", 2, "--per-identity", 2, "--jpeg", "20",
               "--pixels", "256", "--far", 0.5, "--registry", reg.root)
    assert r.exit_code == 0, r.output
    for text in ("undegraded", "JPEG quality 20", "256 px (16x16)", "vs undegraded"):
        assert text in r.output


@pytest.mark.parametrize("flag,value,words", [("--jpeg", "0,50", "outside 1..100"), ("--pixels", "8", "below 16"),
                                              ("--jpeg", "ten", "not a whole number")])
def test_cli_bad_lists_are_one_line(reg, flag, value, words):
    r = invoke("eval", "robustness", "--version", "v1", flag, value, "--registry", reg.root)
    assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_eval_group_keeps_the_plain_command(reg, add_tiny):
    add_tiny("v1")
    r = invoke("eval", "--version", "v1", "--synthetic", 3, "--per-identity", 2, "--far", 0.5, "--json",
               "--registry", reg.root)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["versions"][0]["name"] == "v1"
    r = invoke("eval", "--synthetic", 3)
    assert r.exit_code == 2 and "Missing option '--version'" in r.output
    r = invoke("eval", "--json", "robustness", "--version", "v1", "--registry", reg.root)
    assert r.exit_code == 2 and "after the sub-command" in r.output


def test_cli_on_a_folder(tmp_path, reg, add_tiny):
    from tests.evaluation.conftest import write_faces

    add_tiny("v1")
    write_faces(tmp_path / "faces", 3, 2, size=48)
    r = invoke("eval", "robustness", "--version", "v1", "--data", tmp_path / "faces", "--jpeg", "50", "--pixels",
               "400", "--far", 0.5, "--json", "--registry", reg.root)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["dataset"].startswith("folder:") and out["n_identities"] == 3 and out["source_size"] == 32
