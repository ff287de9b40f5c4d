"""`harmony eval sets` (YouTube-Faces-style set verification) and the synthetic videos behind it:
the pairs file, the set score against a brute-force loop, the 10-fold figures against a direct
computation, smooth videos, and the CLI (including `harmony data videos`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from harmony.cli.main import app
from harmony.data.images import list_images, load_images
from harmony.data.synthetic_video import (
    AMPLITUDE,
    LIGHT,
    POSE,
    render_video,
    video_pairs,
    video_params,
    write_videos,
)
from harmony.errors import InvalidInput, NotFound
from harmony.evaluation.sets import read_set_pairs, set_distance, set_verification
from harmony.metrics import lfw_protocol
from harmony.models.encode import encode_array

runner = CliRunner()


def test_pairs_file_formats(tmp_path):
    p = tmp_path / "pairs.txt"
    p.write_text("# comment\n" + "".join(f"a{i} b{i} {i % 2}\n" for i in range(20)))
    pairs = read_set_pairs(p)
    assert [x.fold for x in pairs] == [i // 2 for i in range(20)] and pairs[1].same and not pairs[0].same
    p.write_text("a b 1 3\nc d 0 3\n")
    assert [x.fold for x in read_set_pairs(p)] == [3, 3]
    for text, words in (("a b 2\n", ":1:"), ("a b 1 3\nc d 0\n", "some lines give a FOLD"), ("# none\n", "no pairs")):
        p.write_text(text)
        with pytest.raises(InvalidInput, match=words):
            read_set_pairs(p)
    with pytest.raises(NotFound):
        read_set_pairs(tmp_path / "absent.txt")


def test_set_distance_is_the_mean_over_all_frame_pairs():
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, 8)) for n in (3, 5))
    a, b = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (a, b))
    brute = np.mean([np.sum((x - y) ** 2) for x in a for y in b])
    assert set_distance(a.astype(np.float32), b.astype(np.float32)) == pytest.approx(brute, abs=1e-5)


def test_videos_drift_smoothly_in_pose_and_light_only():
    q = video_params(3, 0, 50)
    moving = list(POSE + LIGHT)
    still = [j for j in range(24) if j not in moving]
    assert np.array_equal(q[:, still], np.repeat(q[:1, still], 50, 0))
    step = np.abs(np.diff(q[:, moving], axis=0)).max()
    assert 0 < step <= AMPLITUDE * 2 * np.pi * 1.5 / 50 + 1e-6  # no jump between frames
    assert np.array_equal(q, video_params(3, 0, 50)) and not np.array_equal(q, video_params(3, 1, 50))
    frames = render_video(3, 0, 4)
    assert frames.shape == (4, 64, 64, 3) and not np.array_equal(frames[0], frames[1])


def test_video_pairs_balanced_in_folds():
    pairs = video_pairs(4, 3, 20)
    assert len(pairs) == 20 and len({(a, b) for a, b, _, _ in pairs}) == 20
    for f in range(10):
        kinds = [s for _, _, s, fold in pairs if fold == f]
        assert sorted(kinds) == [False, True]
    assert all((a[0] == b[0]) == s for a, b, s, _ in pairs)
    with pytest.raises(InvalidInput, match="multiple of 20"):
        video_pairs(4, 3, 30)
    with pytest.raises(InvalidInput, match="same-person pairs"):
        video_pairs(2, 2, 20)


@pytest.fixture()
def videos(tmp_path):
    root = tmp_path / "videos"
    pairs = write_videos(root, 4, 3, 3, 20, size=32)
    return root, pairs


def test_set_verification_equals_a_direct_computation(videos, reg, add_tiny):
    root, pairs_file = videos
    model = add_tiny("v1")
    res = set_verification(reg, "v1", pairs_file, root, frames=2, far=0.1)
    assert res.n_pairs == 20 and res.n_sets == 12 and res.frames_used == 24 and res.lfw.n_folds == 10
    pairs = read_set_pairs(pairs_file)
    emb = {}
    for s in {x for p in pairs for x in (p.a, p.b)}:
        emb[s] = encode_array(model, load_images(list_images(root / s)[:2], 32).images)
    d = np.array([np.mean([[np.sum((x - y) ** 2) for y in emb[p.b]] for x in emb[p.a]]) for p in pairs])
    want = lfw_protocol(d, np.array([p.same for p in pairs]), np.array([p.fold for p in pairs]), far=0.1)
    assert res.lfw.accuracy_mean == pytest.approx(want.accuracy_mean)
    assert res.lfw.fold_accuracies == pytest.approx(want.fold_accuracies)
    again = set_verification(reg, "v1", pairs_file, root, frames=2, far=0.1)
    assert again.from_cache and again.lfw.accuracy_mean == res.lfw.accuracy_mean


def test_cli_sets_and_data_videos(tmp_path, reg, add_tiny):
    add_tiny("v1")
    out = tmp_path / "v"
    r = runner.invoke(app, ["data", "videos", "--out", str(out), "--identities", "4", "--videos", "3", "--frames", "2",
                            "--pairs", "20", "--size", "32"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert len(list(out.glob("id*/*/*.png"))) == 24 and (out / "pairs.txt").is_file()
    args = ["eval", "sets", "--version", "v1", "--pairs", str(out / "pairs.txt"), "--data", str(out),
            "--registry", str(reg.root)]
    r = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    j = json.loads(r.stdout)
    assert j["n_pairs"] == 20 and len(j["lfw"]["fold_accuracies"]) == 10 and 0 <= j["accuracy_mean"] <= 1
    r = runner.invoke(app, args, catch_exceptions=False, terminal_width=200)
    assert r.exit_code == 0 and "set verification" in r.output and "+-" in r.output
    (out / "pairs.txt").write_text("id00000/00 nowhere/00 0 0\n")
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 2 and "nowhere/00" in r.output
    r = runner.invoke(app, ["data", "videos", "--out", str(tmp_path / "w"), "--pairs", "30"], catch_exceptions=False)
    assert r.exit_code == 2 and "multiple of 20" in r.output and not (tmp_path / "w").exists()
