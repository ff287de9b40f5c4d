"""Issue 18 / DESIGN section 8: a folder of raw photos with a dlib ``detect`` version, end to end
from the CLI: eval, gallery build|add|search, and a migration to a harmony-trained version that
aligns with another aligner (so each source photo is read once per version, with its own pipeline).

The bug first: images used to be resized to the version's 150 px input before the detector saw
them (small faces on a large photo vanish), and one photo without a face aborted the whole run.

The photos are variants of one real portrait (tests/realfaces/photos.py) under two labels: that
checks the plumbing of every command, not accuracy (which needs different people: LFW, bench/).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.realfaces.photos import NO_FACE, PEOPLE, SMALL_FACES, variant, write_raw_folder

pytest.importorskip("dlib", reason="the dlib adapter needs pip install 'harmony[dlib]'")
if __import__("importlib").util.find_spec("face_recognition_models") is None:
    pytest.skip("face_recognition_models not installed (pip install 'harmony[dlib]')", allow_module_level=True)

runner = CliRunner()
N_FACES = sum(len(p) for p in PEOPLE.values())  # 8 photos with a face, and cat.jpg without


def harmony(*args, ok: bool = True):
    from harmony.cli.main import app

    r = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert r.exit_code == 0, r.output
    return r


def register_trained(reg, name: str, folder: Path, align: dict | None) -> None:
    """A seeded, untrained 128-D small_cnn at 32 px (as tests/gallery/helpers.py registers its
    tiny versions), recording ``align`` in its pipeline: a harmony-trained version for raw photos."""
    import torch

    from harmony.models.embedder import Embedder, EmbedderSpec

    torch.manual_seed(3)
    m = Embedder(EmbedderSpec(dim=128, image_size=32, backbone_args={"widths": [8, 16]})).eval()
    path = folder / f"{name}.pt"
    torch.save(m.checkpoint(), path)
    meta = {"spec": m.spec.as_dict()} | ({"align": align} if align else {})
    reg.add_version(name, kind="base", artifact=path, backbone="small_cnn", dim=128, meta=meta)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return write_raw_folder(tmp_path_factory.mktemp("raw") / "photos")


def test_the_bug_resizing_before_detection_loses_small_faces(raw):
    """Cause 1 of section 8: at the model's 150 px the small faces are gone; at full resolution
    (what every aligned version now reads) each is found."""
    from harmony.align.detect import detect_faces
    from harmony.data.images import load_image, read_rgb
    from harmony.models.pipeline import DLIB_DETECT_ALIGN

    for rel in SMALL_FACES:
        assert detect_faces(load_image(raw / rel, 150), DLIB_DETECT_ALIGN) == [], rel
        assert len(detect_faces(read_rgb(raw / rel), DLIB_DETECT_ALIGN)) >= 1, rel
    assert detect_faces(read_rgb(raw / "eileen" / "cat.jpg"), DLIB_DETECT_ALIGN) == []


def test_raw_photo_story_from_the_cli(raw, tmp_path, monkeypatch, caplog):
    from PIL import Image

    from harmony.align.crop import align_photo
    from harmony.evaluation import embed_cached, folder_set
    from harmony.models.dlib_model import DlibEncoder
    from harmony.models.pipeline import DLIB_DETECT_ALIGN
    from harmony.registry import Registry

    caplog.set_level(logging.WARNING, logger="harmony")
    root = tmp_path / "registry"
    monkeypatch.setenv("HARMONY_REGISTRY", str(root))
    cat = str((raw / "eileen" / "cat.jpg").absolute())

    harmony("registry", "add-external", "dlib", "--adapter", "dlib", "--mode", "detect")
    reg = Registry.open(root)
    assert reg.get_version("dlib").meta["align"] == DLIB_DETECT_ALIGN.as_dict()

    # eval: succeeds, the photo without a face skipped and named, with its reason in the log
    r = harmony("eval", "--version", "dlib", "--data", raw, "--far", 0.1)
    assert f"({N_FACES} images, 2 identities)" in r.output
    assert "1 unreadable image(s), skipped:" in r.output and cat in r.output
    assert f"skipped: no face found in {cat}" in caplog.text
    out = json.loads(harmony("eval", "--version", "dlib", "--data", raw, "--far", 0.1, "--json").stdout)
    assert out["unreadable"] == [cat] and out["versions"][0]["from_cache"] is True

    # the same vectors through eval (the embedding cache) as through the library directly
    emb = embed_cached(reg, "dlib", folder_set(raw).source)
    assert emb.from_cache and emb.vectors.shape == (N_FACES, 128)
    paths = [p for p, good in zip(folder_set(raw).source.paths, emb.ok) if good]
    assert cat not in paths and len(paths) == N_FACES
    chips = [align_photo(np.asarray(Image.open(p).convert("RGB")), DLIB_DETECT_ALIGN)[0] for p in paths]
    np.testing.assert_allclose(emb.vectors, DlibEncoder("aligned").encode(chips), atol=1e-5)

    # gallery build: the same skip; every face photo is an item
    caplog.clear()
    r = harmony("gallery", "build", "--name", "raw", "--version", "dlib", "--data", raw)
    assert f"{N_FACES} items of 2 identities" in r.stdout
    assert "1 unreadable image(s) skipped" in r.stderr and cat in r.stderr
    assert f"skipped: no face found in {cat}" in caplog.text

    # gallery add: a new raw photo (small face, off centre) is added; a photo without a face is not
    new = tmp_path / "new" / "eileen-at-the-window.jpg"
    new.parent.mkdir()
    variant(scale=0.6, canvas=(1000, 750), at=(600, 60), seed=5).save(new, quality=90)
    r = harmony("gallery", "add", "--name", "raw", new, NO_FACE, "--identity", "eileen")
    assert "1 added, 0 replaced" in r.stdout and str(NO_FACE) in r.stderr

    # gallery search with a raw photo: the pixels of b.jpg (a small face on a large photo) in
    # another, lossless file find b.jpg's item at distance ~0: the query was detected and aligned
    # at full resolution exactly as the item was
    query = tmp_path / "query.png"
    Image.open(raw / "eileen" / "b.jpg").convert("RGB").save(query)
    out = json.loads(harmony("gallery", "search", "--name", "raw", "--query", query, "-k", 3, "--json").stdout)
    [result] = out["results"]
    top = result["hits"][0]
    assert (top["item_id"], top["version"]) == ("eileen/b.jpg", "dlib") and top["distance"] < 1e-6
    assert result["hits"][1]["distance"] > 1e-3

    # migrate to a harmony-trained version with another aligner (facenet crops at 32 px): no
    # compatibility verdict, so a full backfill before the swap; each source photo is read again
    # with the target's own pipeline. One photo was replaced by a photo without a face since the
    # build: it is skipped and named, and the swap needs --allow-missing.
    from harmony.align.spec import AlignSpec

    register_trained(reg, "fn", tmp_path, AlignSpec(style="facenet", size=32).as_dict())
    replaced = raw / "eileen-b" / "h.jpg"
    Image.open(NO_FACE).convert("RGB").save(replaced, quality=90)
    r = harmony("migrate", "gallery", "--gallery", "raw", "--to", "fn", "--dry-run")
    assert "full backfill before the swap" in r.stdout
    caplog.clear()
    r = harmony("migrate", "gallery", "--gallery", "raw", "--to", "fn", "--swap", ok=False)
    assert r.exit_code == 2 and "--allow-missing" in r.stderr
    # N_FACES + 1 items (the add above); the replaced photo is the one without a vector
    assert f"{N_FACES} embedded in this run" in r.stdout and "1 unreadable" in r.stdout
    assert "eileen-b/h.jpg" in r.stderr and str(replaced.absolute()) in r.stderr
    assert f"skipped: no face found in {replaced.absolute()}" in caplog.text
    r = harmony("migrate", "gallery", "--gallery", "raw", "--to", "fn", "--swap", "--allow-missing")
    assert "swapped: gallery raw serves fn" in r.stdout
    status = harmony("migrate", "status", "--gallery", "raw", "--json").stdout
    assert "eileen-b/h.jpg" in status and str(replaced.absolute()) in status

    # after the swap, a raw query runs through fn's pipeline (facenet alignment) and finds the item
    out = json.loads(harmony("gallery", "search", "--name", "raw", "--query", query, "-k", 1, "--json").stdout)
    assert out["query_version"] == "fn"
    top = out["results"][0]["hits"][0]
    assert (top["item_id"], top["version"]) == ("eileen/b.jpg", "fn") and top["distance"] < 1e-6
