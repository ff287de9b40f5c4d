"""align_folder on real photos and hostile variants of them: every photo is aligned or listed
with its path and reason, the run never aborts, a second run redoes nothing, a changed spec
redoes everything, and a process pool gives the same crops."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dlib", reason="dlib is optional: pip install 'harmony[dlib]'")

from PIL import Image  # noqa: E402

from harmony.align.detect import detect_faces  # noqa: E402
from harmony.align.folder import align_folder  # noqa: E402
from harmony.align.report import NO_FACE, REPORT_NAME  # noqa: E402
from harmony.align.spec import AlignSpec  # noqa: E402
from harmony.data.images import MAX_PIXELS  # noqa: E402
from tests.align.conftest import NO_FACE as NO_FACE_PHOTO  # noqa: E402
from tests.align.conftest import PORTRAIT, huge_png, redetect  # noqa: E402

SPEC = AlignSpec(style="dlib-chip", size=96)


def save(rgb: np.ndarray, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **kw)
    return path


def by_path(report) -> dict:
    return {p.path: p for p in report.photos}


def test_portrait_is_aligned_and_the_no_face_photo_is_reported(tmp_path):
    raw = tmp_path / "raw"
    (raw / "eileen").mkdir(parents=True)
    (raw / "chelsea").mkdir()
    (raw / "eileen" / "astronaut.jpg").write_bytes(PORTRAIT.read_bytes())
    (raw / "chelsea" / "cat.jpg").write_bytes(NO_FACE_PHOTO.read_bytes())
    ticks = []
    report = align_folder(raw, tmp_path / "crops", SPEC, progress=ticks.append)
    got = by_path(report)
    assert got["eileen/astronaut.jpg"].status == "aligned" and got["eileen/astronaut.jpg"].faces == 1
    assert got["chelsea/cat.jpg"].status == "no_face" and got["chelsea/cat.jpg"].reason == NO_FACE == "no face found"
    crop = np.asarray(Image.open(tmp_path / "crops" / "eileen" / "astronaut.png"))
    assert crop.shape == (96, 96, 3) and len(redetect(crop)) == 1
    assert not (tmp_path / "crops" / "chelsea").exists() or not any((tmp_path / "crops" / "chelsea").iterdir())
    saved = json.loads((tmp_path / "crops" / REPORT_NAME).read_text())
    assert saved["spec"] == SPEC.as_dict() and saved["counts"]["aligned"] == 1 and saved["counts"]["no_face"] == 1
    assert saved["problems"] == [{"path": "chelsea/cat.jpg", "reason": "no face found"}]
    assert [p["faces"] for p in saved["photos"]] == [0, 1]
    assert ticks[-1].done == ticks[-1].total == 2 and ticks[-1].unit == "photos"


def two_faces(portrait: np.ndarray) -> np.ndarray:
    """The portrait next to a 3/4-size copy of itself: two faces, the left one larger."""
    small = np.asarray(Image.fromarray(portrait).resize((384, 384), Image.BILINEAR))
    canvas = np.full((512, 1024, 3), 128, np.uint8)
    canvas[:, :512] = portrait
    canvas[64:448, 576:960] = small
    return canvas


def test_several_faces_all_faces_writes_each_and_default_the_largest(tmp_path, portrait):
    raw = tmp_path / "raw"
    save(two_faces(portrait), raw / "pair.png")
    default = align_folder(raw, tmp_path / "one", SPEC)
    every = align_folder(raw, tmp_path / "all", SPEC, all_faces=True)
    assert by_path(default)["pair.png"].faces == 2 and by_path(default)["pair.png"].crops == ("pair.png",)
    assert by_path(every)["pair.png"].crops == ("pair_1.png", "pair_2.png")
    assert sorted(p.name for p in (tmp_path / "all").glob("*.png")) == ["pair_1.png", "pair_2.png"]
    faces = detect_faces(two_faces(portrait))
    assert faces[0].box[2] <= 512 < faces[1].box[0]  # largest first: the full-size portrait on the left
    assert (tmp_path / "one" / "pair.png").read_bytes() == (tmp_path / "all" / "pair_1.png").read_bytes()
    assert (tmp_path / "all" / "pair_1.png").read_bytes() != (tmp_path / "all" / "pair_2.png").read_bytes()


def hostile_folder(raw: Path, portrait: np.ndarray) -> dict[str, str]:
    """Every bad input of the issue next to each other; name -> the expected status."""
    grey = np.asarray(Image.fromarray(portrait).convert("L"))
    save(portrait, raw / "ok" / "plain.jpg", quality=90)
    save(grey, raw / "ok" / "grey.jpg", quality=90)
    Image.fromarray(portrait).convert("CMYK").save(raw / "ok" / "cmyk.jpg", quality=90)
    save((grey.astype(np.uint16) * 257), raw / "ok" / "sixteen.png")
    assert Image.open(raw / "ok" / "sixteen.png").mode in ("I;16", "I")
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: stored 90 degrees counter-clockwise
    Image.fromarray(portrait).rotate(90, expand=True).save(raw / "ok" / "exif6.jpg", quality=90, exif=exif.tobytes())
    save(np.zeros((1, 1, 3), np.uint8), raw / "bad" / "one-pixel.png")
    jpeg = (raw / "ok" / "plain.jpg").read_bytes()
    (raw / "bad" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (raw / "bad" / "text.jpg").write_bytes(b"not an image at all")
    (raw / "bad" / "empty.png").write_bytes(b"")
    huge_png(raw / "bad" / "huge.png")
    (raw / "bad" / "notes.txt").write_text("not a photo: ignored")
    return {"ok/plain.jpg": "aligned", "ok/grey.jpg": "aligned", "ok/cmyk.jpg": "aligned", "ok/sixteen.png": "aligned",
            "ok/exif6.jpg": "aligned", "bad/one-pixel.png": "no_face", "bad/truncated.jpg": "unreadable",
            "bad/text.jpg": "unreadable", "bad/empty.png": "unreadable", "bad/huge.png": "unreadable"}


def test_every_bad_input_is_aligned_or_listed_with_its_reason(tmp_path, portrait):
    raw = tmp_path / "raw"
    expected = hostile_folder(raw, portrait)
    sideways = np.asarray(Image.open(raw / "ok" / "exif6.jpg"))  # the stored pixels, orientation ignored
    assert sideways.shape[:2] == (512, 512) and not np.array_equal(sideways, portrait)
    assert detect_faces(np.rot90(portrait).copy()) == []  # unrotated, HOG finds no face: the EXIF matters
    report = align_folder(raw, tmp_path / "crops", SPEC)
    got = by_path(report)
    assert {k: v.status for k, v in got.items()} == expected
    for name, status in expected.items():
        if status == "aligned":
            crop = np.asarray(Image.open(tmp_path / "crops" / got[name].crops[0]))
            assert crop.shape == (96, 96, 3) and len(redetect(crop)) == 1, name
        else:
            assert got[name].crops == () and got[name].reason, name
    assert f"too large: 20000x20000 pixels, limit {MAX_PIXELS:,}" in got["bad/huge.png"].reason
    assert got["bad/one-pixel.png"].reason == "no face found"
    assert "truncated" in got["bad/truncated.jpg"].reason
    saved = json.loads((tmp_path / "crops" / REPORT_NAME).read_text())
    assert {p["path"] for p in saved["problems"]} == {k for k, v in expected.items() if v != "aligned"}
    assert saved["counts"] == report.counts and report.counts["aligned"] == 5 and report.counts["crops"] == 5


def test_a_12000_by_9000_photo_is_aligned_in_seconds(tmp_path, portrait):
    big = np.full((9000, 12000, 3), 90, np.uint8)
    big[:, 1500:10500] = np.asarray(Image.fromarray(portrait).resize((9000, 9000), Image.BILINEAR))
    save(big, tmp_path / "raw" / "phone.jpg", quality=85)
    del big
    t0 = time.perf_counter()
    report = align_folder(tmp_path / "raw", tmp_path / "crops", SPEC)
    elapsed = time.perf_counter() - t0
    (res,) = report.photos
    assert res.status == "aligned" and res.faces == 1
    assert len(redetect(np.asarray(Image.open(tmp_path / "crops" / "phone.png")))) == 1
    print(f"aligned a 12000x9000 photo in {elapsed:.1f} s")
    assert elapsed < 20, f"{elapsed:.1f} s"  # ~3 s on an idle core: decode, downscaled search, full-res landmarks


def test_second_run_aligns_nothing_new_and_a_changed_size_realigns(tmp_path, portrait):
    raw, out = tmp_path / "raw", tmp_path / "crops"
    save(portrait, raw / "a" / "1.jpg")
    save(np.asarray(Image.fromarray(portrait).transpose(Image.FLIP_LEFT_RIGHT)), raw / "a" / "2.jpg")
    (raw / "b").mkdir()
    (raw / "b" / "cat.jpg").write_bytes(NO_FACE_PHOTO.read_bytes())
    first = align_folder(raw, out, SPEC)
    assert first.counts["aligned_now"] == 2 and first.counts["no_face"] == 1
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    ticks = []
    second = align_folder(raw, out, SPEC, progress=ticks.append)
    assert second.counts["aligned_now"] == 0 and second.counts["resumed"] == 2 and second.counts["no_face"] == 1
    assert ticks[-1].total == 0 and {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == mtimes
    # a photo replaced after its crop was written is aligned again, and only that one
    time.sleep(0.01)
    save(portrait, raw / "a" / "2.jpg", quality=70)
    third = align_folder(raw, out, SPEC)
    assert [p.path for p in third.photos if p.status == "aligned" and not p.resumed] == ["a/2.jpg"]
    # a crop deleted by hand is written again
    (out / "a" / "1.png").unlink()
    assert [p.path for p in align_folder(raw, out, SPEC).photos if p.status == "aligned" and not p.resumed] == ["a/1.jpg"]
    bigger = AlignSpec(style="dlib-chip", size=128)
    fourth = align_folder(raw, out, bigger)
    assert fourth.counts["aligned_now"] == 2 and fourth.counts["resumed"] == 0
    assert Image.open(out / "a" / "1.png").size == (128, 128)
    assert json.loads((out / REPORT_NAME).read_text())["spec"]["size"] == 128


def test_an_interrupted_run_with_another_spec_is_not_taken_for_done(tmp_path, portrait):
    raw, out = tmp_path / "raw", tmp_path / "crops"
    save(portrait, raw / "1.jpg")
    align_folder(raw, out, SPEC)
    other = AlignSpec(style="facenet", size=96)
    # what a kill -9 right after a crop of the other spec was written would leave: the report
    # of the other spec's run start (entries of SPEC dropped), then a fresh crop
    align_folder(raw, tmp_path / "scratch", other)
    (out / "1.png").write_bytes((tmp_path / "scratch" / "1.png").read_bytes())
    report = json.loads((out / REPORT_NAME).read_text())
    report["spec_id"], report["photos"] = "000000000000", []
    (out / REPORT_NAME).write_text(json.dumps(report))
    again = align_folder(raw, out, SPEC)
    assert again.counts["aligned_now"] == 1  # no entry of SPEC: aligned again, not trusted


def test_stale_extra_faces_are_removed_when_realigned(tmp_path, portrait):
    raw, out = tmp_path / "raw", tmp_path / "crops"
    save(two_faces(portrait), raw / "pair.png")
    align_folder(raw, out, SPEC, all_faces=True)
    time.sleep(0.01)
    save(portrait, raw / "pair.png")  # now a single face
    report = align_folder(raw, out, SPEC, all_faces=True)
    assert report.photos[0].crops == ("pair_1.png",)
    assert sorted(p.name for p in out.glob("*.png")) == ["pair_1.png"]
    align_folder(raw, out, SPEC)  # another spec's crops are replaced, not left beside the new one
    assert sorted(p.name for p in out.glob("*.png")) == ["pair.png"]


def test_same_stem_photos_keep_apart_and_photos_directly_in_raw(tmp_path, portrait):
    raw = tmp_path / "raw"
    save(portrait, raw / "me.jpg")
    save(portrait, raw / "me.png")
    report = align_folder(raw, tmp_path / "crops", SPEC)
    assert sorted(c for p in report.photos for c in p.crops) == ["me_jpg.png", "me_png.png"]


def test_a_process_pool_gives_the_same_crops_and_report(tmp_path, portrait):
    raw = tmp_path / "raw"
    for i in range(4):
        save(np.roll(portrait, 8 * i, axis=1), raw / f"p{i}" / "face.jpg")
    (raw / "p9").mkdir()
    (raw / "p9" / "bad.jpg").write_bytes(b"corrupt")
    serial = align_folder(raw, tmp_path / "serial", SPEC, workers=1)
    pooled = align_folder(raw, tmp_path / "pooled", SPEC, workers=2)
    strip = lambda r: [(p.path, p.status, p.faces, p.crops, p.reason) for p in r.photos]  # noqa: E731
    assert strip(serial) == strip(pooled) and serial.counts["aligned"] == 4
    for p in (tmp_path / "serial").rglob("*.png"):
        assert p.read_bytes() == (tmp_path / "pooled" / p.relative_to(tmp_path / "serial")).read_bytes()


def test_unusable_folders_are_typed_errors(tmp_path):
    from harmony.errors import InvalidInput, NotFound

    with pytest.raises(NotFound):
        align_folder(tmp_path / "missing", tmp_path / "crops")
    (tmp_path / "raw").mkdir()
    with pytest.raises(InvalidInput):
        align_folder(tmp_path / "raw", tmp_path / "raw")
    assert os.listdir(tmp_path / "raw") == []
