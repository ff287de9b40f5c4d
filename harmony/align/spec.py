"""How a photo becomes an aligned face crop: a frozen, JSON-round-trippable description.

A version records its aligner like its weights (DESIGN section 8): two versions with different
aligners each read every source photo with their own. Styles:

- ``dlib-chip``: dlib's 5-point similarity transform (``get_face_chip``): eyes level, the face
  scaled to ``size`` with dlib's ``padding`` (0.25, what dlib's ResNet was trained on);
- ``facenet``: the FaceNet reimplementations' crop: the detector's box grown by ``margin`` pixels
  (half on each side, in the photo's pixels), clipped to the photo, resized to ``size``, no rotation.

Detection (``detect.py``): HOG at each ``upsample`` level in turn until a face scores at least
``min_score``; weaker detections are kept only when nothing clears it (then the single best one),
so a badge or a pattern next to a confident face is no second face, while a photo whose only face
is faint still gets aligned at dlib's own threshold (0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from harmony.errors import InvalidInput

STYLES = ("dlib-chip", "facenet")
DETECTORS = ("dlib-hog",)
MAX_DETECT_SIDE = 2048  # larger photos are searched on a downscaled copy; landmarks use full resolution


@dataclass(frozen=True)
class AlignSpec:
    style: str = "dlib-chip"
    size: int = 150
    margin: int = 32  # facenet style only
    padding: float = 0.25  # dlib-chip style only
    detector: str = "dlib-hog"
    upsample: tuple[int, ...] = (0, 1, 2)  # HOG pyramid up-sampling tried in turn until a face is found
    max_side: int = MAX_DETECT_SIDE
    min_score: float = 0.3  # HOG score a face needs when a stronger one is not the only candidate (see above)

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise InvalidInput(f"unknown alignment style {self.style!r}", hint=f"use one of {', '.join(STYLES)}")
        if self.detector not in DETECTORS:
            raise InvalidInput(f"unknown face detector {self.detector!r}", hint=f"use one of {', '.join(DETECTORS)}")
        if not 16 <= int(self.size) <= 1024:
            raise InvalidInput(f"alignment size {self.size} is outside 16..1024", hint="e.g. --size 160")
        if not 0 <= int(self.margin) <= 512 or not 0.0 <= float(self.padding) <= 2.0:
            raise InvalidInput(f"alignment margin {self.margin} / padding {self.padding} out of range",
                               hint="margin 0..512 pixels, padding 0..2")
        if not self.upsample or any(u < 0 or u > 3 for u in self.upsample):
            raise InvalidInput(f"detector up-sampling {self.upsample} out of range", hint="values 0..3, e.g. 0,1,2")
        if not -1.0 <= float(self.min_score) <= 3.0:
            raise InvalidInput(f"min_score {self.min_score} outside -1..3", hint="e.g. 0.3 (dlib's own threshold is 0)")
        if int(self.max_side) < 256:
            raise InvalidInput(f"max_side {self.max_side} < 256", hint="e.g. 2048")

    @property
    def name(self) -> str:
        return f"{self.detector}+{self.style}@{self.size}"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["upsample"] = list(self.upsample)
        return d

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "AlignSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InvalidInput(f"unknown alignment key(s) {', '.join(unknown)}", hint=f"known: {', '.join(sorted(known))}")
        kw = dict(raw)
        if "upsample" in kw:
            kw["upsample"] = tuple(int(u) for u in kw["upsample"])
        return cls(**kw)
