"""dlib's 128-D face ResNet (``pip install 'harmony[dlib]'``) as an external version's Encoder.

The artifact is a JSON manifest naming the model files and their sha256 (``registry.manifests``),
so ``verify`` and loading notice a changed model. The encoder always embeds face chips (resized
to 150x150). The mode is the version's input pipeline (``harmony.models.pipeline``): ``aligned``
records no alignment (inputs are chips already); ``detect`` records
``AlignSpec(style="dlib-chip", size=150)``, so every command detects the largest face on the
full-resolution photo and hands the encoder its 5-point chip (``get_face_chip(150)``), and a photo
with no face is skipped and listed rather than fatal.
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
    from harmony.models.pipeline import InputPipeline
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
    """dlib's 128-D face ResNet on face chips (any size, resized to 150x150). ``mode`` is kept
    for the record: detection belongs to the version's pipeline, not to the encoder."""

    dim = 128
    image_size = DLIB_CHIP

    def __init__(self, mode: str = "aligned"):
        if mode not in DLIB_MODES:
            raise InvalidInput(f"unknown dlib mode {mode!r}", hint=f"use one of {', '.join(DLIB_MODES)}")
        files = dlib_model_files()
        import dlib

        self.mode = mode
        self.model = dlib.face_recognition_model_v1(str(files["recognition"]))

    def encode(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        imgs = check_images(images)
        if not imgs:
            return np.zeros((0, self.dim), np.float32)
        chips = [np.ascontiguousarray(resize(img, DLIB_CHIP)) for img in imgs]
        vectors = self.model.compute_face_descriptor(chips)
        return l2_normalise(np.array([np.array(v) for v in vectors], dtype=np.float32))


def dlib_pipeline(mode: str) -> "InputPipeline":
    """The input pipeline a dlib version of ``mode`` records."""
    from harmony.models.pipeline import DLIB_DETECT_ALIGN, InputPipeline

    return InputPipeline(DLIB_CHIP, DLIB_DETECT_ALIGN if mode == "detect" else None)


def _recorded(p: "InputPipeline") -> dict[str, Any]:
    """The pipeline keys a dlib version records: its size and aligner (colour RGB and "the network
    normalises internally" are what ``input_pipeline`` reads when nothing else is recorded)."""
    return {k: v for k, v in p.meta().items() if k in ("image_size", "align")}


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
                               meta={"adapter": "dlib", "mode": mode, **_recorded(dlib_pipeline(mode))})
