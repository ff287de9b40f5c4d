"""How a detected face becomes the crop a model sees (see spec.py for the styles)."""

from __future__ import annotations

import numpy as np

from harmony.align.detect import Face, detect_faces
from harmony.align.spec import AlignSpec


def crop_face(image: np.ndarray, face: Face, spec: AlignSpec) -> np.ndarray:
    """``(spec.size, spec.size, 3)`` uint8 RGB crop of ``face`` in ``image``."""
    image = np.ascontiguousarray(image)
    if spec.style == "dlib-chip":
        import dlib

        shape = dlib.full_object_detection(dlib.rectangle(*face.box),
                                           [dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks])
        return np.asarray(dlib.get_face_chip(image, shape, size=spec.size, padding=spec.padding))
    from PIL import Image

    h, w = image.shape[:2]
    left, top, right, bottom = face.box
    half = spec.margin / 2
    x0, y0, x1, y1 = max(0, int(left - half)), max(0, int(top - half)), min(w, int(right + half)), min(h, int(bottom + half))
    region = np.ascontiguousarray(image[y0:y1, x0:x1])  # cut before PIL sees it: no copy of a huge photo
    return np.asarray(Image.fromarray(region).resize((spec.size, spec.size), Image.BILINEAR))


def align_photo(image: np.ndarray, spec: AlignSpec = AlignSpec(), all_faces: bool = False) -> list[np.ndarray]:
    """Aligned crops of the largest face (or of every face), largest first; ``[]``: no face."""
    faces = detect_faces(image, spec)
    return [crop_face(image, f, spec) for f in (faces if all_faces else faces[:1])]
