"""The backfill curve: mixed-search quality against the share of the gallery backfilled, per order.

Setting: ``n`` labelled gallery items, each embedded by the old and the new version (rows
aligned). After backfilling a fraction ``f`` in a given order, the first ``m = floor(f n + 1/2)``
items of the order hold their new vector and the others still their old one: exactly what mixed
search (mixed_search.py) scores each item against, its newest vector, one per item, the old and
new indexes' results merged by distance. Queries mid-migration are embedded by the new version.

Measured at each fraction, with probes = every item embedded by the new version and the gallery
= the items with their current (mixed) vector, leave-one-out:

- top-1 identification: probe ``i`` is a hit when its nearest item ``j != i`` (squared L2 to ``j``'s
  current vector) has ``i``'s identity; ties go against the probe
  (``harmony.metrics.identification``); probes whose identity has no other item are not counted.
- VAL@FAR: over the pairs ``(i, j)``, ``i != j``, at distance ``D(new_i, current_j)``: DESIGN
  section 2's cross-version pair set with the gallery side mixed, so a pair whose ``j`` is
  backfilled is a new-new pair and the others are new->old pairs. The threshold rule is
  ``harmony.metrics.val_at_far`` (t* from this fraction's different pairs). At ``f = 0`` this is
  VAL(new->old); at ``f = 1`` VAL(new,new) over ordered pairs.

Area: the trapezoidal area under each curve over ``f`` in [0, 1] (1.0 = perfect from the start).
Orders come from order.py over the old vectors and labels, as a backfill of these items would
plan them. ``gallery_curves`` measures a gallery's items and changes nothing.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from harmony.errors import InvalidInput
from harmony.metrics.fars import check_far
from harmony.migration.order import POLICIES, RANDOM, UNCERTAINTY, backfill_order, check_policy, uncertainty_method

if TYPE_CHECKING:
    from harmony.registry import Registry

DEFAULT_STEPS = 10  # fractions 0, 0.1, ..., 1.0
DEFAULT_FAR = 1e-3


def curve_fractions(steps: int = DEFAULT_STEPS) -> np.ndarray:
    """``steps + 1`` evenly spaced fractions from 0 to 1."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= 1000:
        raise InvalidInput(f"steps must be an integer in 1..1000, got {steps!r}", hint="use --steps 10")
    return np.round(np.linspace(0.0, 1.0, int(steps) + 1), 12)


def trapezoid_area(x: Sequence[float], y: Sequence[float]) -> float:
    """Trapezoidal area under ``y(x)``; ``x`` strictly increasing."""
    xs, ys = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if xs.ndim != 1 or xs.shape != ys.shape or xs.size < 2 or (np.diff(xs) <= 0).any():
        raise InvalidInput("area needs two or more points with strictly increasing x",
                           hint="pass the fractions in increasing order")
    return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0)


def backfilled_count(fraction: float, n: int) -> int:
    """Items backfilled at ``fraction`` of ``n``: ``floor(fraction * n + 1/2)``."""
    return min(n, math.floor(fraction * n + 0.5))


def mixed_vectors(old: np.ndarray, new: np.ndarray, order: np.ndarray, m: int) -> np.ndarray:
    """Each item's current vector after the first ``m`` items of ``order`` were backfilled."""
    out = old.copy()
    done = order[:m]
    out[done] = new[done]
    return out


@dataclass(frozen=True)
class BackfillCurve:
    """One order's curve: top-1 and VAL@FAR at each fraction, and the area under each."""

    order: str
    fractions: tuple[float, ...]
    top1: tuple[float, ...]
    val: tuple[float, ...]
    far: float
    zero_false_accepts: bool = False  # far x different pairs < 1: VAL rests on zero false accepts

    @property
    def auc_top1(self) -> float:
        return trapezoid_area(self.fractions, self.top1)

    @property
    def auc_val(self) -> float:
        return trapezoid_area(self.fractions, self.val)

    def as_dict(self) -> dict[str, Any]:
        return {"order": self.order, "far": self.far, "fractions": list(self.fractions), "top1": list(self.top1),
                "val": list(self.val), "auc_top1": self.auc_top1, "auc_val": self.auc_val,
                "zero_false_accepts": self.zero_false_accepts}


def _probe_setup(labels: np.ndarray) -> np.ndarray:
    names, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    if names.size < 2:
        raise InvalidInput("the backfill curve needs items of at least two identities",
                           hint="add items of more identities to the gallery")
    if (np.bincount(codes) >= 2).sum() == 0:
        raise InvalidInput("the backfill curve needs an identity with two or more items (no same pairs otherwise)",
                           hint="add more images per identity")
    return codes.astype(np.int64)


def backfill_curve(old: np.ndarray, new: np.ndarray, labels: np.ndarray, order: np.ndarray, *,
                   far: float = DEFAULT_FAR, steps: int = DEFAULT_STEPS, name: str = "custom") -> BackfillCurve:
    """Top-1 and VAL@``far`` of mixed search at each fraction of a backfill in ``order`` (module doc).

    old, new: ``(n, d)`` unit vectors of the same items (rows aligned); labels ``(n,)``; order: a
    permutation of ``0..n-1``, first backfilled first.
    """
    from harmony.metrics import MetricsWarning, val_at_far
    from harmony.metrics._checks import as_embeddings
    from harmony.metrics.identification import wrong_closer_counts

    O, N = as_embeddings(old, "old"), as_embeddings(new, "new")
    if O.shape != N.shape:
        raise InvalidInput(f"old {O.shape} and new {N.shape} embeddings differ in shape",
                           hint="embed the same items, in the same order, with both versions")
    n = O.shape[0]
    if len(labels) != n:
        raise InvalidInput(f"{len(labels)} labels for {n} items", hint="pass one label per item")
    o = np.asarray(order, dtype=np.int64)
    if o.shape != (n,) or not np.array_equal(np.sort(o), np.arange(n)):
        raise InvalidInput(f"order must be a permutation of the {n} item positions", hint="use backfill_order(...)")
    far = check_far(far)
    codes = _probe_setup(labels)
    fr = curve_fractions(steps)
    top1, val, zero = [], [], False
    for f in fr:
        G = mixed_vectors(O, N, o, backfilled_count(float(f), n))
        counts = wrong_closer_counts(N, codes, G, codes, exclude_self=True)
        counted = counts >= 0
        top1.append(float((counts[counted] == 0).mean()))
        with warnings.catch_warnings():  # a zero-false-accept figure is said once, by the caller
            warnings.simplefilter("ignore", MetricsWarning)
            v = val_at_far(N, labels, far, gallery=G)
        val.append(float(v.val))
        zero = zero or v.zero_false_accepts
    return BackfillCurve(name, tuple(float(f) for f in fr), tuple(top1), tuple(val), float(far), zero)


@dataclass(frozen=True)
class CurveReport:
    """Curves of several orders over one item set (``as_dict`` for --json, the registry-free report)."""

    source: str
    target: str
    n_items: int
    n_identities: int
    n_probes: int  # items whose identity has another item (the top-1 denominator)
    far: float
    seed: int
    score: str | None  # the uncertainty score these items allow (order.SCORES), when that order is measured
    curves: tuple[BackfillCurve, ...]
    about: dict[str, Any] = field(default_factory=dict)  # where the vectors came from

    def curve(self, order: str) -> BackfillCurve:
        for c in self.curves:
            if c.order == order:
                return c
        raise InvalidInput(f"no curve for order {order!r}", hint=f"measured: {', '.join(c.order for c in self.curves)}")

    def uncertainty_vs_random(self) -> dict[str, float] | None:
        """Area differences uncertainty - random (positive: uncertainty first is better), if both ran."""
        names = {c.order for c in self.curves}
        if not {UNCERTAINTY, RANDOM} <= names:
            return None
        u, r = self.curve(UNCERTAINTY), self.curve(RANDOM)
        return {"auc_top1": u.auc_top1 - r.auc_top1, "auc_val": u.auc_val - r.auc_val}

    @property
    def zero_false_accepts(self) -> bool:
        """far x different pairs < 1: the VAL figures rest on zero false accepts."""
        return any(c.zero_false_accepts for c in self.curves)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "n_items": self.n_items,
                "n_identities": self.n_identities, "n_probes": self.n_probes, "far": self.far, "seed": self.seed,
                "score": self.score, "zero_false_accepts": self.zero_false_accepts,
                "curves": [c.as_dict() for c in self.curves], "uncertainty_minus_random": self.uncertainty_vs_random(),
                **self.about}


def order_curves(old: np.ndarray, new: np.ndarray, labels: np.ndarray, orders: Sequence[str] = POLICIES, *,
                 seed: int = 0, far: float = DEFAULT_FAR, steps: int = DEFAULT_STEPS, source: str = "old",
                 target: str = "new", about: dict[str, Any] | None = None) -> CurveReport:
    """One curve per order policy, each order planned by order.py from the old vectors and labels."""
    orders = [check_policy(o) for o in dict.fromkeys(orders)]
    if not orders:
        raise InvalidInput("no orders to measure", hint=f"pass some of {', '.join(POLICIES)}")
    lab = np.asarray(labels).astype(str)
    n = len(lab)
    curves = tuple(backfill_curve(old, new, lab, backfill_order(o, n, old, lab, seed), far=far, steps=steps, name=o)
                   for o in orders)
    counts = np.bincount(_probe_setup(lab))
    return CurveReport(source=source, target=target, n_items=n, n_identities=int(counts.size),
                       n_probes=int(counts[counts >= 2].sum()), far=float(check_far(far)), seed=int(seed),
                       score=uncertainty_method(lab) if UNCERTAINTY in orders else None, curves=curves,
                       about=dict(about or {}))


EmbedBy = Callable[[str, list[str]], tuple[np.ndarray, np.ndarray]]  # (version, sources) -> (vectors, ok)


def gallery_curves(reg: Registry, gallery: str, target: str, orders: Sequence[str] = POLICIES, *, seed: int = 0,
                   far: float | None = None, steps: int = DEFAULT_STEPS, max_items: int | None = None,
                   embed: EmbedBy | None = None, device: str | None = None) -> CurveReport:
    """The curves of a migration of ``gallery`` (from the version it serves) to ``target``, over its items.

    Old vectors are the gallery's stored ones; new vectors are the target index's where it holds
    them, else the items are embedded with ``target`` from their sources (IVF galleries: both
    versions re-embedded). Above ``max_items`` (default report.MAX_ITEMS) a seeded sample is
    measured, and the orders are planned over that sample. ``far`` defaults to the gallery's
    operating FAR. The report carries the gate's verdict at the gallery's FAR: without a passing
    one the product never serves this mixed gallery (queries stay on the old version until the
    swap), so the curve is what mixed search would give, not what users get. Writes nothing: no
    registry row, no index, no checkpoint.
    """
    from harmony.gallery.catalog import open_gallery
    from harmony.migration.gate import verdict_view
    from harmony.migration.report import MAX_ITEMS, gallery_pairs
    from harmony.models.pipeline import FileEmbedder, check_dim

    record, store = open_gallery(reg, gallery, use_gpu=False)
    t = reg.resolve(target)
    source = store.active_version
    if t == source:
        raise InvalidInput(f"gallery {gallery} already serves {t}: there is nothing to backfill",
                           hint="pass another --to version")
    check_dim(reg.get_version(t), store.dim, gallery)
    if embed is None:
        def embed(version: str, sources: list[str]) -> tuple[np.ndarray, np.ndarray]:
            return FileEmbedder(reg, version, device=device)(sources)
    old, new, labels, _, about = gallery_pairs(store, source, t, embed, MAX_ITEMS if max_items is None else max_items,
                                            seed, all_items=True)
    verdict = verdict_view(reg, t, source, record.far)
    return order_curves(old, new, labels, orders, seed=seed, far=record.far if far is None else far, steps=steps,
                        source=source, target=t, about={"gallery": gallery, **about, "mixed_served": verdict.compatible,
                                                        "verdict": verdict.describe()})


def plot_backfill_curves(report: CurveReport, out_png: str | Path) -> Path:
    """Two panels (top-1, VAL@FAR) against the fraction backfilled, one line per order with its
    area in the legend; matplotlib's Agg canvas (no pyplot state), written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from harmony.io import atomic_writer

    if not report.curves:
        raise InvalidInput("no curves to plot", hint="measure at least one order")
    out = Path(out_png)
    fig = Figure(figsize=(11, 4.4), dpi=100)
    FigureCanvasAgg(fig)
    panels = ((fig.add_subplot(1, 2, 1), "top1", "auc_top1", "mixed-search top-1 identification"),
              (fig.add_subplot(1, 2, 2), "val", "auc_val", f"VAL@FAR={report.far:g} (new probes x mixed gallery)"))
    for ax, key, area, ylabel in panels:
        for c in report.curves:
            ax.plot(np.asarray(c.fractions) * 100, getattr(c, key), marker="o", markersize=3,
                    label=f"{c.order} (area {getattr(c, area):.3f})")
        ax.set_xlabel("gallery backfilled (%)")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0, 100)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"backfill {report.source} -> {report.target}: {report.n_items} items, "
                 f"{report.n_identities} identities" + (f", uncertainty score {report.score}" if report.score else ""),
                 fontsize=10)
    fig.tight_layout()
    with atomic_writer(out) as fh:
        fig.savefig(fh, format="png")
    return out
