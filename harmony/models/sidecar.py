"""The input pipeline a standalone model file carries: its JSON sidecar and the checks of its values.

``harmony registry export-model`` writes ``FILE`` and ``FILE.json``; ``add-external --file FILE``
reads ``FILE.json`` when it is there, so the pipeline need not be typed again. The sidecar holds
``model_format`` (onnx | torchscript), ``image_size``, ``colour`` (rgb | bgr), ``input_layout``
(NCHW | NHWC), ``mean``/``std`` in the units of that format's adapter (``mean_std_of``: ONNX on
0..255 pixels, TorchScript on x/255), ``normalises_internally``, ``dim``, and the ``version`` and
``sha256`` of the registered artifact it was exported from.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from harmony.errors import InvalidInput

if TYPE_CHECKING:
    from harmony.align.spec import AlignSpec
    from harmony.registry.records import Version
    from harmony.registry.store import Registry

SIDECAR_FORMAT = "harmony.model-pipeline/1"
MAX_IMAGE_SIZE = 1024  # face models take 96-299 px; a larger input is a typo that would exhaust memory
COLOURS = ("rgb", "bgr")


def sidecar_path(model_file: Path | str) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    p = Path(model_file)
    return p.with_name(p.name + ".json")


def read_sidecar(model_file: Path | str, model_format: str) -> dict[str, Any] | None:
    """The sidecar of ``model_file`` (None when there is none), checked to be for ``model_format``."""
    path = sidecar_path(model_file)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidInput(f"sidecar {path} is not readable JSON ({err})",
                           hint="re-export the model, or delete the sidecar and pass the pipeline options") from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise InvalidInput(f"sidecar {path} is not a harmony model pipeline (format {SIDECAR_FORMAT})",
                           hint="re-export the model with `harmony registry export-model`, or delete the sidecar")
    if data.get("model_format") != model_format:
        raise InvalidInput(f"sidecar {path} describes a {data.get('model_format')} model, not {model_format}",
                           hint=f"use --adapter {data.get('model_format')}")
    return data


def check_image_size(image_size: Any) -> int:
    """A side length in 8..MAX_IMAGE_SIZE."""
    try:
        size = int(image_size)
    except (TypeError, ValueError):
        size = -1
    if isinstance(image_size, bool) or size != image_size or not 8 <= size <= MAX_IMAGE_SIZE:
        raise InvalidInput(f"--image-size {image_size} is outside 8..{MAX_IMAGE_SIZE}",
                           hint="pass the model's input size, e.g. --image-size 112 or 160")
    return size


def check_mean_std(mean: Sequence[float], std: Sequence[float], example: str) -> tuple[list[float], list[float]]:
    """Three finite means and three finite positive stds, as float lists."""
    try:
        m, s = [float(x) for x in mean], [float(x) for x in std]
    except (TypeError, ValueError):
        m, s = [], []
    if len(m) != 3 or len(s) != 3 or not all(math.isfinite(x) for x in (*m, *s)) or any(x <= 0 for x in s):
        raise InvalidInput(f"need 3 finite mean values and 3 finite positive std values, got mean {list(mean)} "
                           f"std {list(std)}", hint=f"e.g. {example}")
    return m, s


def check_colour(colour: str) -> str:
    if colour not in COLOURS:
        raise InvalidInput(f"colour order {colour!r} is not rgb or bgr", hint="pass --colour rgb or --colour bgr")
    return colour


def register_model_file(reg: "Registry", name: str, file: Path, *, backbone: str, dim: int, meta: dict[str, Any],
                        side: dict[str, Any], align: "AlignSpec | None", parent: str | None,
                        command: str | None) -> "Version":
    """The last step every file-based adapter shares: provenance from the sidecar, the recorded
    aligner, then the registry copies the file and commits the version."""
    meta = dict(meta)
    if side:
        meta["exported_from"] = {"version": side.get("version"), "sha256": side.get("sha256")}
    if align is not None:
        meta["align"] = align.as_dict()
    return reg.add_version(name, kind="external", artifact=file, backbone=backbone, dim=dim, parent=parent,
                           meta=meta, command=command)
