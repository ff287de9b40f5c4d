"""FaceNet Table 4 as a measurement: VAL@1e-3 against JPEG quality and against face size in pixels.

Every image of a labelled set is read once at a source size ``S`` (at least the model's input
side ``m`` and the side of the largest pixel condition, so no condition up-samples the source),
through the version's own pipeline (aligned first when the version aligns; its colour order
applied last, after the degradation). Then, per condition:

- reference: the crop resized to ``m x m`` (PIL bilinear; down-sizing is anti-aliased);
- JPEG quality ``q``: the reference re-encoded by Pillow at quality ``q`` and decoded;
- face size ``px``: the crop down-sized to ``round(sqrt(px))`` squared, then resized to ``m x m``.

Each condition's embeddings are scored by ``harmony.metrics.val_at_far`` over all pairs of the
same images (identities with fewer than 2 readable images dropped, as ``harmony eval`` does).
Degraded images are never cached: only the undegraded reference could be, and it is cheap.
Tests: tests/evaluation/test_robustness.py.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harmony.errors import InvalidInput
from harmony.evaluation.datasets import LabelledSet
from harmony.metrics import ValAtFar, val_at_far
from harmony.models.encoder import Encoder, resize
from harmony.models.pipeline import CropEncoder, InputPipeline, load_chunk
from harmony.progress import ProgressFn, tick

JPEG_QUALITIES: tuple[int, ...] = (10, 20, 30, 50, 70, 90)  # the paper's Table 4 columns
PIXELS: tuple[int, ...] = (1600, 6400, 14400, 25600, 65536)  # 40^2 .. 256^2, the paper's rows
FAR = 1e-3
MIN_PIXELS = 16  # a 4 x 4 face


def parse_ints(text: str | Sequence[int] | None, flag: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """``"10,20,30"`` (or a sequence of ints) -> (10, 20, 30); duplicates dropped, order kept."""
    if text is None:
        return default
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else [str(p) for p in text]
    out: list[int] = []
    for p in parts:
        try:
            v = int(p)
        except ValueError:
            raise InvalidInput(f"{flag} {text!r}: {p!r} is not a whole number",
                               hint=f"a comma-separated list such as {','.join(map(str, default))}") from None
        if v not in out:
            out.append(v)
    if not out:
        raise InvalidInput(f"{flag} is empty", hint=f"e.g. {flag} {','.join(map(str, default))}")
    return tuple(out)


def check_qualities(qs: Sequence[int], flag: str = "--jpeg") -> tuple[int, ...]:
    bad = [q for q in qs if not 1 <= q <= 100]
    if bad:
        raise InvalidInput(f"{flag}: JPEG quality {bad[0]} is outside 1..100", hint=f"e.g. {flag} 10,20,30,50,70,90")
    return tuple(qs)


def check_pixels(px: Sequence[int], flag: str = "--pixels") -> tuple[int, ...]:
    bad = [p for p in px if p < MIN_PIXELS]
    if bad:
        raise InvalidInput(f"{flag}: {bad[0]} pixels is below {MIN_PIXELS} (a 4 x 4 face)",
                           hint=f"e.g. {flag} 1600,6400,14400,25600,65536 (40x40 .. 256x256)")
    return tuple(px)


def side_of(pixels: int) -> int:
    """The square side a face of ``pixels`` pixels is shrunk to."""
    return max(1, round(math.sqrt(pixels)))


# -- degradations (uint8 (n, h, w, 3) RGB in, same out) ------------------------------------------

def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    """Each image re-encoded by Pillow as JPEG at ``quality`` (4:2:0 chroma, Pillow's default) and decoded."""
    from PIL import Image

    out = np.empty_like(images)
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        out[i] = np.asarray(Image.open(buf).convert("RGB"))
    return out


def shrink(images: np.ndarray, pixels: int, size: int) -> np.ndarray:
    """Each image down-sized to ``side_of(pixels)`` squared, then resized to ``size x size``."""
    side = side_of(pixels)
    return np.stack([resize(resize(img, side), size) for img in images]) if len(images) else \
        np.zeros((0, size, size, 3), np.uint8)


@dataclass(frozen=True)
class Condition:
    """One column of Table 4: ``kind`` "reference", "jpeg" (``value`` = quality) or "pixels"."""

    kind: str
    value: int | None = None

    @property
    def label(self) -> str:
        if self.kind == "jpeg":
            return f"JPEG quality {self.value}"
        if self.kind == "pixels":
            s = side_of(int(self.value or 0))
            return f"{self.value} px ({s}x{s})"
        return "undegraded"

    def apply(self, crops: np.ndarray, size: int) -> np.ndarray:
        """The model-sized images this condition shows the network, from crops at the source size."""
        if self.kind == "pixels":
            return shrink(crops, int(self.value or 0), size)
        ref = np.stack([resize(c, size) for c in crops]) if len(crops) else np.zeros((0, size, size, 3), np.uint8)
        return jpeg(ref, int(self.value or 0)) if self.kind == "jpeg" else ref


def conditions(qualities: Sequence[int], pixels: Sequence[int]) -> tuple[Condition, ...]:
    return (Condition("reference"), *(Condition("jpeg", q) for q in qualities),
            *(Condition("pixels", p) for p in pixels))


# -- the measurement ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RobustnessRow:
    condition: Condition
    val: ValAtFar
    delta: float  # VAL minus the undegraded reference's

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.condition.kind, "value": self.condition.value, "label": self.condition.label,
                "val": self.val.val, "delta": self.delta, "detail": self.val.as_dict()}


@dataclass(frozen=True)
class RobustnessResult:
    """Table 4 for one version: the reference row, then the JPEG rows, then the face-size rows."""

    version: str
    dataset: str
    far: float
    input_size: int
    source_size: int
    n_images: int
    n_identities: int
    rows: tuple[RobustnessRow, ...]
    unreadable: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    plot: Path | None = None

    @property
    def reference(self) -> RobustnessRow:
        return self.rows[0]

    def of(self, kind: str) -> tuple[RobustnessRow, ...]:
        return tuple(r for r in self.rows if r.condition.kind == kind)

    def as_dict(self) -> dict[str, Any]:
        from harmony.evaluation.results import json_safe

        return json_safe({"version": self.version, "dataset": self.dataset, "far": self.far,
                          "input_size": self.input_size, "source_size": self.source_size,
                          "n_images": self.n_images, "n_identities": self.n_identities,
                          "reference": self.reference.val.val,
                          "jpeg": [r.as_dict() for r in self.of("jpeg")],
                          "pixels": [r.as_dict() for r in self.of("pixels")],
                          "unreadable": list(self.unreadable), "notes": list(self.notes),
                          "plot": None if self.plot is None else str(self.plot)})


def source_size(input_size: int, pixels: Sequence[int]) -> int:
    """The side images are read at: the model's input or the largest face-size condition, whichever is larger."""
    return max([int(input_size)] + [side_of(p) for p in pixels])


def embed_conditions(encoder: Encoder, pipeline: InputPipeline, data: LabelledSet, conds: Sequence[Condition],
                     input_size: int, size: int, *, batch_size: int = 256,
                     progress: ProgressFn | None = None) -> tuple[dict[Condition, np.ndarray], np.ndarray, list[str]]:
    """({condition: (n_ok, dim) unit rows}, ok mask over the set, unreadable inputs): each chunk
    is read once at ``size`` and shown to the network under every condition."""
    read = dataclasses.replace(pipeline, colour="rgb")  # degrade RGB pixels; the colour order comes last
    crop_encoder = CropEncoder(encoder, pipeline)
    parts: dict[Condition, list[np.ndarray]] = {c: [] for c in conds}
    oks, bad = [], []
    n = data.source.n
    for a in range(0, n, max(int(batch_size), 1)):
        b = min(a + batch_size, n)
        d = load_chunk(data.source, a, b, size, read)
        oks.append(np.asarray(d.ok, bool))
        bad.extend(u.path for u in d.unusable)
        for c in conds:
            if len(d.images):
                parts[c].append(np.asarray(crop_encoder.encode(c.apply(d.images, input_size)), np.float32))
        tick(progress, "embedding degraded faces", b, n, unit="images")
    vecs = {c: np.concatenate(p) if p else np.zeros((0, int(encoder.dim)), np.float32) for c, p in parts.items()}
    return vecs, np.concatenate(oks) if oks else np.zeros(0, bool), bad


def measure(encoder: Encoder, pipeline: InputPipeline, data: LabelledSet, *,
            qualities: Sequence[int] = JPEG_QUALITIES, pixels: Sequence[int] = PIXELS, far: float = FAR,
            version: str = "", batch_size: int = 256, device: str | None = None,
            progress: ProgressFn | None = None) -> RobustnessResult:
    """Table 4 of ``encoder`` (with its version's ``pipeline``) on a labelled set."""
    from harmony.evaluation.run import caveats

    qualities, pixels = check_qualities(qualities), check_pixels(pixels)
    if not isinstance(data, LabelledSet):
        raise InvalidInput("robustness needs a labelled set (identities), not a pair list",
                           hint="pass --data ROOT/<identity>/<image> or use the synthetic default")
    m = int(pipeline.image_size or encoder.image_size)
    s = source_size(m, pixels)
    conds = conditions(qualities, pixels)
    vecs, ok, bad = embed_conditions(encoder, pipeline, data, conds, m, s, batch_size=batch_size, progress=progress)
    labels = np.asarray(data.labels)[ok]
    notes: list[str] = []
    ids, counts = np.unique(labels, return_counts=True)
    keep = ~np.isin(labels, ids[counts < 2])
    if not keep.all():
        notes.append(f"{int((counts < 2).sum())} identit(ies) left with fewer than 2 readable images skipped")
    labels = labels[keep]
    if np.unique(labels).size < 2:
        raise InvalidInput("fewer than 2 identities have 2+ readable images; verification needs 2",
                           hint="check the unreadable files, or add identities")
    mdev = device or "auto"
    vals: dict[Condition, ValAtFar] = {}
    with caveats(notes):
        for c in conds:
            vals[c] = val_at_far(vecs[c][keep], labels, far, device=mdev)
    ref = vals[conds[0]].val
    rows = tuple(RobustnessRow(c, vals[c], vals[c].val - ref) for c in conds)
    above = [p for p in pixels if side_of(p) >= m]
    if above:
        notes.append(f"face sizes of {m}x{m} px and more ({', '.join(map(str, above))}) reach the model's input "
                     f"({m}x{m}): they only change the resampling, not the detail the network sees")
    return RobustnessResult(version=version, dataset=data.name({s}), far=float(far), input_size=m, source_size=s,
                            n_images=int(labels.size), n_identities=int(np.unique(labels).size), rows=rows,
                            unreadable=tuple(bad), notes=tuple(notes))


def robustness(reg: Any, version: str, data: LabelledSet, *, qualities: Sequence[int] = JPEG_QUALITIES,
               pixels: Sequence[int] = PIXELS, far: float = FAR, plot: str | Path | None = None,
               batch_size: int = 256, device: str | None = None,
               progress: ProgressFn | None = None) -> RobustnessResult:
    """Table 4 of a registered version (any kind the encoder interface loads), optionally plotted."""
    from harmony.models.loading import load_encoder
    from harmony.models.pipeline import input_pipeline

    qualities, pixels = check_qualities(qualities), check_pixels(pixels)  # before loading any model
    v = reg.get_version(version)
    encoder = load_encoder(reg, v.name, batch_size=batch_size, device=device)
    res = measure(encoder, input_pipeline(v), data, qualities=qualities, pixels=pixels, far=far, version=v.name,
                  batch_size=batch_size, device=device, progress=progress)
    if plot is not None:
        res = dataclasses.replace(res, plot=plot_robustness(res, plot))
    return res


def plot_robustness(res: RobustnessResult, out_png: str | Path) -> Path:
    """Two panels, VAL against JPEG quality and against face size (log pixels), the undegraded
    reference dashed; matplotlib's object API on the Agg canvas, written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from harmony.io import atomic_writer

    fig = Figure(figsize=(10, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    panels = ((axes[0], res.of("jpeg"), "JPEG quality", False), (axes[1], res.of("pixels"), "face size (pixels)", True))
    for ax, rows, xlabel, logx in panels:
        ax.axhline(res.reference.val.val, color="0.4", linestyle="--", linewidth=1,
                   label=f"undegraded ({res.reference.val.val:.3f})")
        if rows:
            xs = [r.condition.value for r in rows]
            ys = [r.val.val for r in rows]
            ax.plot(xs, ys, marker="o", label=res.version)
            for x, y in zip(xs, ys):
                ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        if logx:
            from matplotlib.ticker import NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            if rows:
                ax.set_xticks(xs, [f"{side_of(x)}x{side_of(x)}" for x in xs], fontsize=8)
            ax.axvline(res.input_size ** 2, color="0.7", linestyle=":", linewidth=1, zorder=0,
                       label=f"model input {res.input_size}x{res.input_size}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"VAL at FAR {res.far:g}")
        ax.set_ylim(0.0, 1.01)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{res.version}: robustness on {res.dataset} (model input {res.input_size}x{res.input_size})",
                 fontsize=10)
    out = Path(out_png)
    with atomic_writer(out) as fh:
        fig.savefig(fh, format="png")
    return out
