"""Artifacts that name files installed elsewhere: dlib's face model, verified by sha256.

An external dlib version's artifact is a small JSON manifest (role -> file name and sha256) of the
model files inside the ``face_recognition_models`` package. The registry checks those files here
without importing dlib; running the model is ``harmony.models.dlib_model``'s job.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from harmony.errors import NotFound
from harmony.registry.artifacts import sha256_file

DLIB_FILES = {"recognition": "dlib_face_recognition_resnet_model_v1.dat",
              "shape_predictor": "shape_predictor_5_face_landmarks.dat"}
DLIB_HINT = "pip install 'harmony[dlib]'"


def dlib_model_files() -> dict[str, Path]:
    """Locate dlib's model files inside face_recognition_models without importing it (its
    ``__init__`` needs pkg_resources, which new setuptools no longer ships)."""
    if importlib.util.find_spec("dlib") is None:
        raise NotFound("dlib is not installed", hint=DLIB_HINT)
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise NotFound("face_recognition_models (dlib's model files) is not installed", hint=DLIB_HINT)
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    return {role: folder / fname for role, fname in DLIB_FILES.items()}


def dlib_model_problems(manifest_path: Path) -> list[str]:
    """What is wrong with the model files a dlib manifest names (empty when all match)."""
    manifest = json.loads(Path(manifest_path).read_text())
    try:
        files = dlib_model_files()
    except NotFound as err:
        return [f"missing: {err.message} ({DLIB_HINT})"]
    problems = []
    for role, entry in manifest["files"].items():
        path = files.get(role)
        if path is None or not path.is_file():
            problems.append(f"missing: {entry['name']}")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"altered: {path} no longer matches the registered sha256")
    return problems
