"""PNG plots, written atomically: VAL-vs-FAR curves (one line per version or cross pair) and the
version matrix's heat map (probe version x gallery version, unmeasured cells grey).

Uses matplotlib's object API with the Agg canvas directly: no global backend switch, no pyplot
state, safe in headless runs and threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from harmony.errors import InvalidInput
from harmony.io import atomic_writer
from harmony.metrics.fars import DEFAULT_FARS

MARKED_FARS = tuple(sorted(DEFAULT_FARS))  # the FARs the legend quotes


def vals_at_marks(fars: np.ndarray, vals: np.ndarray, marks: tuple[float, ...] = MARKED_FARS) -> dict[float, float]:
    """VAL at each marked FAR inside the curve's range, linear in log10(FAR); ``fars`` sorted ascending."""
    lf = np.log10(fars)
    return {m: float(np.interp(np.log10(m), lf, vals)) for m in marks if fars[0] <= m <= fars[-1]}


def plot_val_far(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], out_png: str | Path,
                 title: str = "VAL vs FAR") -> Path:
    """Plot ``{label: (fars, vals)}`` on a log-FAR axis; mark VAL at FAR 1e-3 and 1e-2.

    The marks interpolate each curve linearly in log10(FAR); their values go in the legend (beside
    the points they collide once curves agree). Cross-version pairs (``a->b``) are dashed.
    Returns the written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise InvalidInput("no curves to plot", hint="pass {'v1': val_far_curve(...)}")
    out = Path(out_png)
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, (fars, vals) in curves.items():
        f = np.asarray(fars, dtype=np.float64)
        v = np.asarray(vals, dtype=np.float64)
        if f.ndim != 1 or f.shape != v.shape or f.size == 0 or (f <= 0).any():
            raise InvalidInput(f"curve {label!r}: fars and vals must be equal-length 1-D, fars > 0",
                               hint="use val_far_curve(...) output")
        order = np.argsort(f)
        f, v = f[order], v[order]
        (line,) = ax.plot(f, v, linestyle="--" if "->" in label else "-")
        marks = vals_at_marks(f, v)
        for mark, y in marks.items():
            ax.plot([mark], [y], marker="o", color=line.get_color())
        line.set_label(f"{label} ({' / '.join(f'{y:.3f}' for y in marks.values())})" if marks else label)
    for mark in MARKED_FARS:
        ax.axvline(mark, color="0.8", linestyle=":", linewidth=1, zorder=0)
    ax.set_xscale("log")
    ax.set_xlabel("FAR (false accept rate)")
    ax.set_ylabel("VAL (validation rate)")
    ax.set_ylim(0.0, 1.01)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 0.06), fontsize=8, title_fontsize=8,
              title="VAL at FAR " + " / ".join(f"{m:g}" for m in MARKED_FARS))

    with atomic_writer(out) as fh:
        fig.savefig(fh, format="png")
    return out


UNMEASURED_GREY = "0.85"  # the colour of a cell nobody measured


def plot_val_matrix(panels: Sequence[tuple[str, np.ndarray, Sequence[str], Sequence[str]]], out_png: str | Path,
                    title: str = "VAL@FAR, probe version (rows) against gallery version (columns)") -> Path:
    """Heat maps of VAL matrices, one panel per ``(title, values (r, c), row labels, column labels)``.

    ``values`` holds VAL in [0, 1] with NaN for an unmeasured pair, drawn grey and left blank
    (never interpolated); measured cells carry their value. Returns the written path.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not panels:
        raise InvalidInput("no matrix to plot", hint="measure a cross-version pair first (harmony eval --against)")
    checked = []
    for name, values, rows, cols in panels:
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 2 or v.shape != (len(rows), len(cols)) or v.size == 0:
            raise InvalidInput(f"matrix {name!r}: values of shape {v.shape} for {len(rows)} row and {len(cols)} "
                               "column labels", hint="pass one value per (row, column), NaN where unmeasured")
        checked.append((name, v, list(rows), list(cols)))
    side = max(max(len(r), len(c)) for _, _, r, c in checked)
    cell_in = 0.9 if side <= 8 else 0.55
    fig = Figure(figsize=(len(checked) * (side * cell_in + 2.2), side * cell_in + 2.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    cmap = colormaps["viridis"].with_extremes(bad=UNMEASURED_GREY)
    axes = fig.subplots(1, len(checked), squeeze=False)[0]
    image = None
    for ax, (name, v, rows, cols) in zip(axes, checked):
        image = ax.imshow(np.ma.masked_invalid(v), cmap=cmap, vmin=0.0, vmax=1.0, aspect="equal")
        ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("gallery version")
        ax.set_ylabel("probe version")
        ax.set_title(name, fontsize=9)
        for i in range(v.shape[0]):
            for j in range(v.shape[1]):
                if not np.isnan(v[i, j]):
                    ax.text(j, i, f"{v[i, j]:.3f}", ha="center", va="center", fontsize=8,
                            color="black" if v[i, j] > 0.6 else "white")
    fig.colorbar(image, ax=list(axes), label="VAL (grey: unmeasured)", shrink=0.8)
    fig.suptitle(title, fontsize=10)
    out = Path(out_png)
    with atomic_writer(out) as fh:
        fig.savefig(fh, format="png")
    return out
