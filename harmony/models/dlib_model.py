"""dlib's 128-D face ResNet (``pip install 'harmony[dlib]'``) as an external version's Encoder.

The artifact is a JSON manifest naming the model files and their sha256 (``registry.manifests``),
so ``verify`` and loading notice a changed model. Mode ``aligned`` embeds images that already are
face chips (resized to 150x150); mode ``detect`` runs dlib's frontal face detector and 5-point
alignment (``get_face_chip(150)``) first.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from harmony.errors import InvalidInput, NotFound
from harmony.models.encoder import check_images, l2_normalise, resize
from harmony.registry.artifacts import sha256_file
from harmony.registry.manifests import DLIB_HINT, dlib_model_files

if TYPE_CHECKING:
    from harmony.registry.records import Version
    from harmony.registry.store import Registry

DLIB_MODES = ("aligned", "detect")
DLIB_CHIP = 150


def dlib_manifest(mode: str) -> dict[str, Any]:
    """The artifact of a dlib version: the installed model files with their sha256."""
    import dlib

    files = dlib_model_files()
    for path in files.values():
        if not path.is_file():
            raise NotFound(f"dlib model file {path} is missing", hint=f"reinstall: {DLIB_HINT}")
    return {"adapter": "dlib", "mode": mode, "dlib": dlib.__version__,
            "files": {role: {"name": p.name, "sha256": sha256_file(p)} for role, p in files.items()}}


class DlibEncoder:
    """dlib's 128-D face ResNet; see the module docstring for the two modes."""

    dim = 128
    image_size = DLIB_CHIP

    def __init__(self, mode: str = "aligned"):
        if mode not in DLIB_MODES:
            raise InvalidInput(f"unknown dlib mode {mode!r}", hint=f"use one of {', '.join(DLIB_MODES)}")
        files = dlib_model_files()
        import dlib

        self.mode = mode
        self.model = dlib.face_recognition_model_v1(str(files["recognition"]))
        if mode == "detect":
            self.detector = dlib.get_frontal_face_detector()
            self.predictor = dlib.shape_predictor(str(files["shape_predictor"]))

    def _chip(self, img: np.ndarray, index: int) -> np.ndarray:
        import dlib

        boxes = self.detector(img, 1)
        if len(boxes) == 0:
            raise InvalidInput(f"no face found in image {index}", hint="pass face crops with --mode aligned, "
                               "or drop images without a detectable face")
        box = max(boxes, key=lambda r: r.width() * r.height())
        return dlib.get_face_chip(img, self.predictor(img, box), size=DLIB_CHIP)

    def encode(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        imgs = check_images(images)
        if not imgs:
            return np.zeros((0, self.dim), np.float32)
        if self.mode == "detect":
            chips = [self._chip(img, i) for i, img in enumerate(imgs)]
        else:
            chips = [resize(img, DLIB_CHIP) for img in imgs]
        vectors = self.model.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
        return l2_normalise(np.array([np.array(v) for v in vectors], dtype=np.float32))


def register_dlib(reg: "Registry", name: str, *, mode: str = "aligned", parent: str | None = None,
                  command: str | None = None) -> "Version":
    """Register dlib's face model as external version ``name`` (artifact: a JSON manifest)."""
    if mode not in DLIB_MODES:
        raise InvalidInput(f"unknown dlib mode {mode!r}", hint=f"use one of {', '.join(DLIB_MODES)}")
    manifest = dlib_manifest(mode)
    from harmony.scratch import scratch_dir

    with scratch_dir(reg.root, f"register-{name}") as tmp:
        path = tmp / "dlib_model.json"
        path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        return reg.add_version(name, kind="external", artifact=path, backbone="dlib_face_recognition_resnet_model_v1",
                               dim=DlibEncoder.dim, parent=parent, command=command,
                               meta={"adapter": "dlib", "mode": mode, "image_size": DLIB_CHIP})
