"""Real-photo fixtures for the alignment tests: the committed portrait and no-face photo
(tests/data/photos, see its README), and variants of them generated here, never committed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"
PORTRAIT = PHOTOS / "astronaut.jpg"
NO_FACE = PHOTOS / "chelsea-no-face.jpg"


def portrait_rgb() -> np.ndarray:
    with Image.open(PORTRAIT) as im:
        return np.asarray(im.convert("RGB"))


def eye_angle(landmarks: np.ndarray) -> float:
    """Degrees of the line between the two eye centres from the horizontal (dlib's 5-point order:
    points 0-1 one eye's corners, 2-3 the other's); 0 means level."""
    a, b = landmarks[0:2].mean(0), landmarks[2:4].mean(0)
    dx, dy = a - b
    return math.degrees(math.atan2(dy, dx))


def redetect(crop: np.ndarray, pad: int = 80):
    """The faces of a crop, padded with its edge pixels (HOG needs context around a face), in
    the crop's own coordinates: (box, landmarks) pairs."""
    from harmony.align.detect import detect_faces

    padded = np.pad(crop, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return [(tuple(v - pad for v in f.box), f.landmarks - pad) for f in detect_faces(padded)]


def huge_png(path: Path) -> Path:
    """A valid 20,000 x 20,000 1-bit PNG of about 48 KB: more pixels than the decoder admits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("1", (20000, 20000)).save(path)
    return path


@pytest.fixture(scope="session")
def portrait() -> np.ndarray:
    return portrait_rgb()
