"""Rich rendering of an :class:`EvalResult` (rendering only; every number comes from the result)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from harmony.evaluation.results import EvalResult

if TYPE_CHECKING:
    from rich.console import RenderableType

MAX_LISTED = 20


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def _threshold(t: float) -> str:
    return "all" if math.isinf(t) else f"{t:.4g}"


def val_table(r: EvalResult):
    from rich.table import Table

    t = Table(title="VAL@FAR over " + ("all pairs" if r.kind == "labelled" else f"the {r.n_pairs} listed pairs"))
    t.add_column("version")
    t.add_column("dim", justify="right")
    t.add_column("px", justify="right")
    for f in r.fars:
        t.add_column(f"VAL@FAR={f:g}", justify="right")
        t.add_column(f"t*@{f:g}", justify="right", style="dim")
    zero = False
    for v in r.versions:
        cells = []
        for x in v.val:
            zero |= x.zero_false_accepts
            cells += [_pct(x.val) + (" *" if x.zero_false_accepts else ""), _threshold(x.threshold)]
        t.add_row(v.name, str(v.dim), str(v.image_size), *cells)
    t.caption = "accept a pair when D < t* (squared L2)" + (
        "; * FAR x different pairs < 1: the figure rests on zero false accepts" if zero else "")
    return t


def identification_table(r: EvalResult):
    from rich.table import Table

    t = Table(title="identification (leave-one-out)")
    t.add_column("version")
    for k in sorted(next(iter(v.top_k for v in r.versions if v.top_k))):
        t.add_column(f"top-{k}", justify="right")
    for v in r.versions:
        if v.top_k:
            t.add_row(v.name, *(_pct(v.top_k[k]) for k in sorted(v.top_k)))
    return t


def clustering_table(r: EvalResult):
    from rich.table import Table

    t = Table(title="clustering: average linkage cut at each version's t* for FAR 1e-3, pairwise scores")
    for col in ("version", "threshold", "clusters", "singletons", "identities", "precision", "recall", "F1"):
        t.add_column(col, justify="left" if col == "version" else "right")
    for v in r.versions:
        c = v.clustering
        if c is not None:
            t.add_row(v.name, _threshold(c.threshold), str(c.n_clusters), str(c.n_singletons), str(c.n_identities),
                      _pct(c.scores.precision), _pct(c.scores.recall), _pct(c.scores.f1))
    return t


def lfw_table(r: EvalResult):
    from rich.table import Table

    rows = [(v.name, v.lfw) for v in r.versions if v.lfw is not None]
    if r.cross_lfw is not None and r.compat is not None:
        rows.append((f"{r.compat.new_name}->{r.compat.old_name}", r.cross_lfw))
    n_folds = rows[0][1].n_folds
    t = Table(title=f"LFW protocol: {r.n_pairs} pairs, {n_folds} folds (threshold chosen on the other folds)")
    t.add_column("version")
    t.add_column("accuracy", justify="right")
    t.add_column("fold thresholds", justify="right", style="dim")
    for name, res in rows:
        t.add_row(name, f"{100 * res.accuracy_mean:.2f} +- {100 * res.accuracy_std:.2f}",
                  f"{_threshold(min(res.thresholds))}..{_threshold(max(res.thresholds))}")
    return t


def render(r: EvalResult) -> list["RenderableType"]:
    """Every table that applies to the result, then the notes and lists of skipped files."""
    ids = f", {r.n_identities} identities" if r.n_identities is not None else f", {r.n_pairs} pairs"
    out: list = [f"[bold]data:[/] {r.dataset} ({r.n_images} images{ids})", val_table(r)]
    if r.kind == "pairs":
        out.append(lfw_table(r))
    if any(v.top_k for v in r.versions):
        out.append(identification_table(r))
    if any(v.clustering is not None for v in r.versions):
        out.append(clustering_table(r))
    if r.compat is not None:
        ct = r.compat.to_rich_table()
        if r.kind == "pairs":
            ct.title = f"compatibility {r.compat.new_name} -> {r.compat.old_name} over {r.n_pairs} listed pairs"
        out.append(ct)
        verdict = r.compat.compatible
        n, o = r.compat.new_name, r.compat.old_name
        if all(verdict.values()):
            out.append(f"[green]{n} is compatible with {o}[/] at every FAR measured (VAL({n}->{o}) >= VAL({o},{o}))")
        else:
            out.append(f"{n} compatible with {o}: " + ", ".join(
                f"FAR {f:g}: {'[green]yes[/]' if ok else '[red]no[/]'}" for f, ok in verdict.items()))
    if r.identification is not None:
        out.append(r.identification.to_rich_table())
    skipped = "their pairs skipped" if r.kind == "pairs" else "skipped"
    for title, items in (("missing", r.missing), ("unreadable", r.unreadable)):
        if items:
            shown = "\n".join(f"  {p}" for p in items[:MAX_LISTED])
            more = f"\n  ... and {len(items) - MAX_LISTED} more (see --json)" if len(items) > MAX_LISTED else ""
            out.append(f"[yellow]{len(items)} {title} image(s), {skipped}:[/]\n{shown}{more}")
    out.append("[dim]embeddings: " + ", ".join(
        f"{v.name} {'from the cache' if v.from_cache else 'computed and cached'}" for v in r.versions) + "[/]")
    for note in r.notes:
        out.append(f"[dim]note: {note}[/]")
    if r.plot is not None:
        out.append(f"plot written to [bold]{r.plot}[/]")
    if r.evaluation_ids:
        out.append(f"[dim]recorded as evaluation(s) {', '.join(map(str, r.evaluation_ids))} in the registry[/]")
    return out
