"""External versions from ONNX files, run through onnxruntime, as Encoders.

The user's ``.onnx`` file is the artifact (copied, sha256 recorded). Registering reads the graph
with the ``onnx`` package (input name, layout, static size, whether it starts by normalising its
input) and runs it once on a blank image to learn its dim; the decisions are recorded in the
version's meta: ``input_layout`` (NCHW | NHWC), ``image_size``, ``colour`` (rgb | bgr), ``mean`` and
``std`` (on 0..255 pixels: the model gets ``(pixel - mean) / std``), ``normalises_internally``.

Defaults follow insightface's convention: RGB, ``(x - 127.5) / 127.5``, unless the graph's first
operation on its input is a Sub/Mul/Div/Add with a constant (the model normalises itself), in
which case the raw 0..255 pixels go in. encode = PIL bilinear resize, colour order, normalise,
layout, onnxruntime (CUDA provider when onnxruntime has it, else CPU), L2 norm.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from harmony.errors import InvalidInput, NotFound
from harmony.models.encoder import check_images, encode_in_batches, resize
from harmony.models.sidecar import (check_colour, check_image_size, check_mean_std, read_sidecar,
                                    register_model_file)

if TYPE_CHECKING:
    from harmony.align.spec import AlignSpec
    from harmony.registry.records import Version
    from harmony.registry.store import Registry

ONNX_HINT = "pip install 'harmony[onnx]' (onnx and onnxruntime)"
INSIGHTFACE_MEAN, INSIGHTFACE_STD = (127.5, 127.5, 127.5), (127.5, 127.5, 127.5)
_NORMALISING_OPS = {"Sub", "Mul", "Div", "Add"}
_PASS_THROUGH_OPS = {"Transpose", "Cast", "Identity"}
_DTYPES = {1: np.float32, 10: np.float16}  # onnx TensorProto FLOAT, FLOAT16


def _import(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise NotFound(f"the onnx adapter needs the {module} package, which is not installed", hint=ONNX_HINT) from None


Dim = int | str  # a static size, or the name of a dynamic one ("?" when unnamed)


@dataclass(frozen=True)
class OnnxGraph:
    """What registration needs to know about an ONNX file's graph."""

    input_name: str
    input_shape: tuple[Dim, ...]
    input_dtype: type
    output_shape: tuple[Dim, ...] | None  # None: the graph does not declare it
    layout: str  # NCHW | NHWC
    normalises_internally: bool

    @property
    def static_size(self) -> int | None:
        """The input's side length when both spatial dims are static (and equal)."""
        h, w = (self.input_shape[2], self.input_shape[3]) if self.layout == "NCHW" else self.input_shape[1:3]
        return h if isinstance(h, int) and h == w else None

    @property
    def static_batch(self) -> int | None:
        b = self.input_shape[0]
        return b if isinstance(b, int) and b > 0 else None


def _dims(value_info: Any) -> tuple[Dim, ...] | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim)


def _shape_text(shape: Sequence[Any] | None) -> str:
    return "unknown" if shape is None else "(" + ", ".join(str(d) for d in shape) + ")"


def _starts_by_normalising(graph: Any, input_name: str) -> bool:
    """True when the first arithmetic on the input (through Transpose/Cast/Identity) is a
    Sub/Mul/Div/Add with a constant operand: the model scales/centres its own input."""
    consts = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    name = input_name
    for _ in range(8):
        users = [n for n in graph.node if name in n.input]
        if len(users) != 1:
            return False
        node = users[0]
        if node.op_type in _PASS_THROUGH_OPS:
            name = node.output[0]
            continue
        others = [i for i in node.input if i != name]
        return node.op_type in _NORMALISING_OPS and bool(others) and all(o in consts for o in others)
    return False


def inspect_onnx(path: Path | str) -> OnnxGraph:
    """Read an ONNX file's graph: one rank-4 float image input (NCHW or NHWC, 3 channels)."""
    onnx = _import("onnx")
    path = Path(path)
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as err:  # noqa: BLE001 - protobuf, checker and OS errors all mean "not a usable ONNX file"
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InvalidInput(f"{path} is not an ONNX model: {why}",
                           hint="pass the .onnx file of a face embedding model") from None
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1 or not g.output:
        raise InvalidInput(f"{path} is not an ONNX face model: it has {len(inputs)} inputs and {len(g.output)} outputs",
                           hint="pass a model with one image input and one embedding output")
    shape = _dims(inputs[0])
    dtype = _DTYPES.get(inputs[0].type.tensor_type.elem_type)
    if shape is None or len(shape) != 4 or dtype is None:
        raise InvalidInput(f"{path} is not an ONNX face model: its input is shaped {_shape_text(shape)} "
                           f"(element type {inputs[0].type.tensor_type.elem_type}), expected float (n, 3, h, w) "
                           "or (n, h, w, 3)", hint="pass a model with one image input")
    if shape[1] == 3:
        layout = "NCHW"
    elif shape[3] == 3:
        layout = "NHWC"
    else:
        raise InvalidInput(f"{path}: cannot tell the channel axis of its input shaped {_shape_text(shape)}",
                           hint="pass a model whose input is (n, 3, h, w) or (n, h, w, 3)")
    return OnnxGraph(inputs[0].name, shape, dtype, _dims(g.output[0]), layout,
                     _starts_by_normalising(g, inputs[0].name))


def pick_providers(device: str | None = None) -> list[str]:
    """``cpu``: the CPU provider; ``None``/``auto``/``cuda``: CUDA first when onnxruntime has it."""
    ort = _import("onnxruntime")
    if device not in ("cpu",) and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxEncoder:
    """An ONNX face model behind the Encoder interface: uint8 RGB (n, h, w, 3) -> (n, dim) unit rows."""

    def __init__(self, path: Path | str, *, image_size: int, dim: int, layout: str = "NCHW", colour: str = "rgb",
                 mean: Sequence[float] = INSIGHTFACE_MEAN, std: Sequence[float] = INSIGHTFACE_STD,
                 batch_size: int = 64, device: str | None = None):
        ort = _import("onnxruntime")
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(self.path), providers=pick_providers(device))
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise InvalidInput(f"{self.path} cannot be loaded by onnxruntime: {str(err).splitlines()[0]}",
                               hint="pass a valid .onnx file (re-export it with a supported opset)") from None
        inp = self.session.get_inputs()[0]
        self.input_name, self.output_name = inp.name, self.session.get_outputs()[0].name
        self.dtype = np.float16 if "float16" in inp.type else np.float32
        self.static_batch = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None
        self.dim, self.image_size, self.layout, self.colour = int(dim), int(image_size), layout, colour
        self.batch_size = self.static_batch or int(batch_size)
        self.mean = np.asarray(mean, np.float32).reshape(1, 1, 1, 3)
        self.std = np.asarray(std, np.float32).reshape(1, 1, 1, 3)
        self.identity = bool(np.all(self.mean == 0) and np.all(self.std == 1))

    def run(self, x: np.ndarray) -> np.ndarray:
        """The model on a preprocessed float batch (the model's layout); pads a short batch when
        the graph's batch size is static."""
        n = len(x)
        if self.static_batch and n != self.static_batch:
            x = np.concatenate([x, np.zeros((self.static_batch - n, *x.shape[1:]), x.dtype)])
        out = self.session.run([self.output_name], {self.input_name: x})[0]
        if out.ndim != 2:
            raise InvalidInput(f"{self.path} returned an output shaped {tuple(out.shape)}, expected (n, dim)",
                               hint="pass a face embedding model whose output is (n, dim)")
        return out[:n]

    def preprocess(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB crops at the model's size -> the float batch the model takes."""
        x = np.stack(batch).astype(np.float32)  # channels already in the model's order (the pipeline's colour step)
        if not self.identity:
            x = (x - self.mean) / self.std
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _forward(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        return self.run(self.preprocess(batch))

    def encode(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        imgs = [resize(img, self.image_size) for img in check_images(images)]
        return encode_in_batches(self._forward, imgs, self.batch_size, self.dim)


def _probe_dim(path: Path, graph: OnnxGraph, size: int) -> int:
    """Run the model once on a blank image; its output must be (1, dim)."""
    enc = OnnxEncoder(path, image_size=size, dim=0, layout=graph.layout, mean=(0, 0, 0), std=(1, 1, 1),
                      device="cpu")
    try:
        out = enc.session.run([enc.output_name], {enc.input_name: enc.preprocess(
            [np.zeros((size, size, 3), np.uint8)] * (enc.static_batch or 1))})[0]
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        raise InvalidInput(f"{path} fails on a {size}x{size} image: {str(err).splitlines()[0]}",
                           hint="pass the model's real input size with --image-size") from None
    if out.ndim != 2 or out.shape[0] != (enc.static_batch or 1) or out.shape[1] < 1:
        raise InvalidInput(f"{path} is not a face embedding model: its output is shaped {tuple(out.shape)} for "
                           f"{enc.static_batch or 1} image(s) (declared {_shape_text(graph.output_shape)}), "
                           "expected (n, dim)", hint="pass a model whose output is one (n, dim) embedding per image")
    return int(out.shape[1])


def register_onnx(reg: "Registry", name: str, file: Path | str, *, image_size: int | None = None,
                  colour: str | None = None, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                  dim: int | None = None, parent: str | None = None, command: str | None = None,
                  align: "AlignSpec | None" = None) -> "Version":
    """Register an ONNX embedding model as external version ``name``.

    Values not passed come from ``FILE.json`` (written by ``harmony registry export-model``) when
    present, else from the graph (size, layout, internal normalisation) and insightface's defaults."""
    file = Path(file)
    if not file.is_file():
        raise InvalidInput(f"ONNX file {file} does not exist", hint="pass --file PATH")
    graph = inspect_onnx(file)
    side = read_sidecar(file, "onnx") or {}
    size = image_size if image_size is not None else side.get("image_size", graph.static_size)
    if graph.output_shape is not None and len(graph.output_shape) != 2:
        if size is not None:  # run it, so the message shows the shape it really returns
            _probe_dim(file, graph, check_image_size(size))
        raise InvalidInput(f"{file} is not a face embedding model: its output is shaped "
                           f"{_shape_text(graph.output_shape)}, expected (n, dim)",
                           hint="pass a model whose output is one (n, dim) embedding per image")
    if size is None:
        raise InvalidInput(f"{file} has a dynamic input shape {_shape_text(graph.input_shape)}: its image size cannot "
                           "be read from the graph", hint="pass --image-size, e.g. --image-size 112")
    size = check_image_size(size)
    if graph.static_size is not None and size != graph.static_size:
        raise InvalidInput(f"--image-size {size} but {file} takes {graph.static_size}x{graph.static_size} input",
                           hint=f"use --image-size {graph.static_size} or omit it")
    internal = bool(side.get("normalises_internally", graph.normalises_internally))
    default_mean, default_std = ((0.0,) * 3, (1.0,) * 3) if internal else (INSIGHTFACE_MEAN, INSIGHTFACE_STD)
    mean_, std_ = check_mean_std(mean if mean is not None else side.get("mean", default_mean),
                                 std if std is not None else side.get("std", default_std),
                                 "--mean 127.5,127.5,127.5 --std 127.5,127.5,127.5 (on 0..255 pixels)")
    colour_ = check_colour(colour if colour is not None else side.get("colour", "rgb"))
    reg.require_writable(file.stat().st_size)
    measured = _probe_dim(file, graph, size)
    if dim is not None and dim != measured:
        raise InvalidInput(f"--dim {dim} but {file} returns {measured}-D embeddings", hint=f"use --dim {measured}")
    meta: dict[str, Any] = {"adapter": "onnx", "image_size": size, "input_layout": graph.layout, "colour": colour_,
                            "mean": mean_, "std": std_, "normalises_internally": internal}
    return register_model_file(reg, name, file, backbone=f"onnx:{file.name}", dim=measured, meta=meta, side=side, align=align,
                               parent=parent, command=command)


def onnx_encoder(path: Path, meta: dict, dim: int, *, batch_size: int = 64, device: str | None = None) -> OnnxEncoder:
    """The Encoder of a registered ONNX version from its meta."""
    return OnnxEncoder(path, image_size=meta["image_size"], dim=dim, layout=meta["input_layout"],
                       colour=meta["colour"], mean=meta["mean"], std=meta["std"], batch_size=batch_size, device=device)
