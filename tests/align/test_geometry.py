"""Alignment geometry on the real portrait: eyes level after a dlib-chip alignment of the photo
rotated by 0, +15 and -15 degrees; a facenet crop is the detected box plus its margin."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dlib", reason="dlib is optional: pip install 'harmony[dlib]'")

from PIL import Image  # noqa: E402

from harmony.align.crop import align_photo, crop_face  # noqa: E402
from harmony.align.detect import detect_faces  # noqa: E402
from harmony.align.spec import AlignSpec  # noqa: E402
from tests.align.conftest import eye_angle, redetect  # noqa: E402


def rotated(rgb: np.ndarray, degrees: float) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).rotate(degrees, Image.BICUBIC, expand=True, fillcolor=(128, 128, 128)))


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("degrees", [0, 15, -15])
def test_dlib_chip_levels_the_eyes(portrait, degrees):
    photo = rotated(portrait, degrees)
    faces = detect_faces(photo)
    assert len(faces) == 1  # the mission patch (a weak HOG hit) is no second face
    before = eye_angle(faces[0].landmarks)
    if degrees:
        assert abs(before) > 10  # the photo really is tilted: the check below can fail
    spec = AlignSpec(style="dlib-chip", size=160)
    (crop,) = align_photo(photo, spec)
    assert crop.shape == (160, 160, 3) and crop.dtype == np.uint8
    found = redetect(crop)
    assert len(found) == 1
    box, landmarks = found[0]
    assert abs(eye_angle(landmarks)) < 3, f"eye line {eye_angle(landmarks):.1f} deg after aligning a {degrees} deg photo"
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    assert np.abs(centre - 80).max() < 16  # the face sits in the middle of the chip


@pytest.mark.parametrize("degrees", [0, 15, -15])
def test_facenet_crop_is_the_box_with_its_margin(portrait, degrees):
    photo = rotated(portrait, degrees)
    (face,) = detect_faces(photo)
    spec = AlignSpec(style="facenet", size=160, margin=32)
    crop = crop_face(photo, face, spec)
    assert crop.shape == (160, 160, 3)
    left, top, right, bottom = face.box
    sx, sy = 160 / (right - left + 32), 160 / (bottom - top + 32)  # the box is far from the photo's edges
    expected = (16 * sx, 16 * sy, 160 - 16 * sx, 160 - 16 * sy)  # the box, inset by the margin's half
    found = redetect(crop)
    assert len(found) == 1
    box, landmarks = found[0]
    assert iou(box, expected) > 0.6, (box, expected)
    assert abs(eye_angle(landmarks) - eye_angle(face.landmarks)) < 3  # facenet does not rotate
    # an independent twin: the same region cut and resized by PIL directly
    twin = np.asarray(Image.fromarray(photo).crop((left - 16, top - 16, right + 16, bottom + 16))
                      .resize((160, 160), Image.BILINEAR))
    assert np.abs(crop.astype(int) - twin).mean() < 2


def test_a_larger_margin_shows_more_around_the_same_face(portrait):
    (face,) = detect_faces(portrait)
    tight = redetect(crop_face(portrait, face, AlignSpec(style="facenet", size=160, margin=0)))[0][0]
    loose = redetect(crop_face(portrait, face, AlignSpec(style="facenet", size=160, margin=64)))[0][0]
    assert (loose[2] - loose[0]) < 0.8 * (tight[2] - tight[0])
