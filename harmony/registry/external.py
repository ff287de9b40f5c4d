"""External embedding versions: models harmony did not train, behind the one Encoder interface.

Two adapters:
- ``torchscript``: the user's TorchScript file is the artifact (copied, sha256 recorded); meta
  holds image_size, mean, std. encode = PIL bilinear resize, (x/255 - mean)/std, module, L2 norm.
- ``dlib``: dlib's 128-D ResNet face model from the ``face_recognition_models`` package
  (``pip install 'harmony[dlib]'``). The artifact is a small JSON manifest naming the model files
  and their sha256, so ``verify`` and loading notice a changed model. Mode ``aligned`` embeds
  images that already are face chips (resized to 150x150); mode ``detect`` runs dlib's frontal
  face detector and 5-point alignment (``get_face_chip(150)``) first.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

from harmony.errors import IntegrityError, InvalidInput, NotFound
from harmony.registry.artifacts import sha256_file

if TYPE_CHECKING:
    from harmony.registry.records import Version
    from harmony.registry.store import Registry

ADAPTERS = ("torchscript", "dlib")
DLIB_MODES = ("aligned", "detect")
DLIB_FILES = {"recognition": "dlib_face_recognition_resnet_model_v1.dat",
              "shape_predictor": "shape_predictor_5_face_landmarks.dat"}
DLIB_HINT = "pip install 'harmony[dlib]'"
DLIB_CHIP = 150


class Encoder(Protocol):
    """Every version's embedding function: uint8 RGB images -> (n, dim) float32, L2-normalised."""

    dim: int
    image_size: int

    def encode(self, images: np.ndarray) -> np.ndarray: ...


def as_images(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """Check a batch of uint8 RGB images, (n, h, w, 3) or a sequence of (h, w, 3) of any sizes."""
    if isinstance(images, np.ndarray) and images.ndim != 4:
        raise InvalidInput(f"expected images shaped (n, h, w, 3), got {images.shape}", hint="stack RGB images")
    seq = list(images)
    for i, img in enumerate(seq):
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise InvalidInput(f"image {i} is {img.dtype} {img.shape}, expected uint8 (h, w, 3) RGB",
                               hint="convert with np.asarray(PIL.Image.open(p).convert('RGB'))")
    return [np.ascontiguousarray(img) for img in seq]


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """PIL bilinear resize to size x size (a no-op when already that size)."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


# -- TorchScript ------------------------------------------------------------------------------------

class TorchScriptEncoder:
    """A torch.jit module mapping (n, 3, s, s) float images to (n, dim) embeddings."""

    def __init__(self, path: Path, *, image_size: int, mean: Sequence[float], std: Sequence[float],
                 dim: int, batch_size: int = 64, device: str = "cpu"):
        import torch

        try:
            with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.13 but is what users have
                warnings.simplefilter("ignore", DeprecationWarning)
                self.module = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError) as err:
            raise InvalidInput(f"{path} is not a TorchScript file: {str(err).splitlines()[0]}",
                               hint="save the model with torch.jit.script(model).save(path)") from None
        self.dim, self.image_size, self.batch_size, self.device = int(dim), int(image_size), batch_size, device
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
        x = ((x - self.mean) / self.std).to(self.device)
        with torch.no_grad():
            out = self.module(x)
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            raise InvalidInput(f"TorchScript module returned {type(out).__name__} "
                               f"{tuple(out.shape) if isinstance(out, torch.Tensor) else ''}, expected (n, dim)",
                               hint="export a module whose forward returns one (n, dim) tensor")
        return out.detach().float().cpu().numpy()

    def encode(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        imgs = [resize(img, self.image_size) for img in as_images(images)]
        parts = [self._forward(np.stack(imgs[i:i + self.batch_size])) for i in range(0, len(imgs), self.batch_size)]
        out = np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
        if out.shape[1] != self.dim:
            raise InvalidInput(f"TorchScript module returned dim {out.shape[1]}, registered dim is {self.dim}",
                               hint="re-register with the right --dim")
        return l2_normalise(out)


def probe_dim(path: Path, image_size: int) -> int:
    """Run a TorchScript file once on a blank image to learn (and check) its embedding dim."""
    enc = TorchScriptEncoder(path, image_size=image_size, mean=(0, 0, 0), std=(1, 1, 1), dim=0)
    return int(enc._forward(np.zeros((1, image_size, image_size, 3), np.uint8)).shape[1])


def register_torchscript(reg: "Registry", name: str, file: Path | str, *, image_size: int,
                         mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.5, 0.5, 0.5),
                         dim: int | None = None, parent: str | None = None, command: str | None = None) -> "Version":
    """Register a TorchScript embedding model as external version ``name``."""
    file = Path(file)
    if not file.is_file():
        raise InvalidInput(f"TorchScript file {file} does not exist", hint="pass --file PATH")
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std) or image_size <= 0:
        raise InvalidInput("need 3 mean values, 3 positive std values and a positive image size",
                           hint="e.g. --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --image-size 112")
    measured = probe_dim(file, image_size)
    if dim is not None and dim != measured:
        raise InvalidInput(f"--dim {dim} but the module returns {measured}-D embeddings", hint=f"use --dim {measured}")
    meta = {"adapter": "torchscript", "image_size": int(image_size),
            "mean": [float(m) for m in mean], "std": [float(s) for s in std]}
    return reg.add_version(name, kind="external", artifact=file, backbone=f"torchscript:{file.name}", dim=measured,
                           parent=parent, meta=meta, command=command)


# -- dlib --------------------------------------------------------------------------------------------

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


def dlib_manifest(mode: str) -> dict[str, Any]:
    import dlib

    files = dlib_model_files()
    for path in files.values():
        if not path.is_file():
            raise NotFound(f"dlib model file {path} is missing", hint=f"reinstall: {DLIB_HINT}")
    return {"adapter": "dlib", "mode": mode, "dlib": dlib.__version__,
            "files": {role: {"name": p.name, "sha256": sha256_file(p)} for role, p in files.items()}}


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
        imgs = as_images(images)
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
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dlib_model.json"
        path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        return reg.add_version(name, kind="external", artifact=path, backbone="dlib_face_recognition_resnet_model_v1",
                               dim=DlibEncoder.dim, parent=parent, command=command,
                               meta={"adapter": "dlib", "mode": mode, "image_size": DLIB_CHIP})


def load_external_encoder(reg: "Registry", version: str, *, device: str = "cpu") -> Encoder:
    """The Encoder of an external version, after checking its artifact's sha256."""
    v = reg.get_version(version)
    adapter = v.meta.get("adapter")
    if v.kind != "external" or adapter not in ADAPTERS:
        raise InvalidInput(f"version '{v.name}' is not an external version (kind {v.kind})",
                           hint="load trained versions through harmony.models")
    path = reg.artifact_path(v.name, verify=True)
    if adapter == "torchscript":
        return TorchScriptEncoder(path, image_size=v.meta["image_size"], mean=v.meta["mean"], std=v.meta["std"],
                                  dim=v.dim, device=device)
    dlib_model_files()  # NotFound with the install hint when the extra is missing
    problems = dlib_model_problems(path)
    if problems:
        raise IntegrityError(f"dlib model of version '{v.name}': {'; '.join(problems)}",
                             hint=f"reinstall the registered model files ({DLIB_HINT}) or register a new version")
    return DlibEncoder(v.meta["mode"])
