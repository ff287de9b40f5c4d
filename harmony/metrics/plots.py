"""VAL-vs-FAR plot (PNG), one line per version or cross pair, written atomically.

Uses matplotlib's object API with the Agg canvas directly: no global backend switch, no pyplot
state, safe in headless runs and threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

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
