"""Where the faces are: dlib's HOG frontal detector with up-sampling retries, and its 5-point
landmarks, on the full-resolution photo (uint8 RGB ``(h, w, 3)``).

A photo larger than ``spec.max_side`` is searched on a downscaled copy (HOG's cost grows with the
pixel count, and a face that small in a 12,000 px photo is below any useful size anyway); the box
is mapped back and the landmarks are fitted on the full-resolution pixels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np

from harmony.align.spec import AlignSpec

if TYPE_CHECKING:
    from PIL import Image as PILImage


@dataclass(frozen=True)
class Face:
    """One detected face, in the photo's own pixel coordinates."""

    box: tuple[int, int, int, int]  # left, top, right, bottom
    landmarks: np.ndarray  # (5, 2) float32 x, y: dlib's 5-point order (eye corners, nose)
    upsample: int  # the up-sampling level that found it
    score: float  # the detector's confidence

    @property
    def area(self) -> int:
        left, top, right, bottom = self.box
        return max(0, right - left) * max(0, bottom - top)


@functools.lru_cache(maxsize=1)
def _models() -> tuple[object, object]:
    """dlib's detector and 5-point predictor, loaded once per process (NotFound without dlib)."""
    from harmony.registry.manifests import dlib_model_files

    files = dlib_model_files()
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(files["shape_predictor"]))


def pil_view(image: np.ndarray) -> "PILImage.Image":
    """A PIL image sharing ``image``'s memory (no copy of a 100-megapixel photo); read-only use."""
    from PIL import Image

    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    return Image.frombuffer("RGB", (w, h), image, "raw", "RGB", 0, 1)


def _downscaled(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` with its longer side at most ``max_side`` (an integer box reduce first, then a
    bilinear resize: both average, so HOG sees no aliasing), and the factor back to full size."""
    h, w = image.shape[:2]
    scale = max(h, w) / max_side
    if scale <= 1.0:
        return image, 1.0
    from PIL import Image

    im = pil_view(image)
    if int(scale) >= 2:
        im = im.reduce(int(scale))
    small = im.resize((max(1, round(w / scale)), max(1, round(h / scale))), Image.BILINEAR)
    return np.asarray(small), scale


def _levels(spec: AlignSpec, side: int) -> list[int]:
    """The up-sampling levels worth trying on a ``side``-pixel image: the first always, further
    ones only while the up-sampled side stays within ``2 * max_side`` (a face that needs more is
    a few dozen pixels in a large photo, and HOG's cost grows 4x per level)."""
    return [u for i, u in enumerate(spec.upsample) if i == 0 or side * 2 ** u <= 2 * spec.max_side]


def detect_faces(image: np.ndarray, spec: AlignSpec = AlignSpec()) -> list[Face]:
    """Faces in ``image``, largest first; empty when none is found at any up-sampling level.

    Levels are tried in turn until one finds a face scoring ``>= spec.min_score``; when none
    does, the single best-scoring weaker detection of any level stands alone (see spec.py)."""
    import dlib

    detector, predictor = _models()
    image = np.ascontiguousarray(image)
    small, scale = _downscaled(image, spec.max_side)
    found: list[tuple[object, float, int]] = []
    best_weak: tuple[object, float, int] | None = None
    for up in _levels(spec, max(small.shape[:2])):
        rects, scores, _ = detector.run(small, up, 0.0)
        found = [(r, float(s), int(up)) for r, s in zip(rects, scores) if s >= spec.min_score]
        if found:
            break
        for r, s in zip(rects, scores):
            if best_weak is None or s > best_weak[1]:
                best_weak = (r, float(s), int(up))
    if not found:
        if best_weak is None:
            return []
        found = [best_weak]
    faces = []
    h, w = image.shape[:2]
    for r, score, up in found:
        box = (max(0, int(r.left() * scale)), max(0, int(r.top() * scale)),
               min(w, int(round(r.right() * scale))), min(h, int(round(r.bottom() * scale))))
        shape = predictor(image, dlib.rectangle(*box))
        pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], np.float32)
        faces.append(Face(box, pts, up, score))
    return sorted(faces, key=lambda f: f.area, reverse=True)
