"""Rich tables of the metric records (rendering only; every number comes from the record).

The library returns dataclasses (``CompatReport``, ``IdentificationReport``, ``EvalResult``);
the commands that show them (eval, train harmonic, demo) build their tables here.
Tests: tests/cli/test_tables.py.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping, Sequence

from rich.table import Table

if TYPE_CHECKING:
    from harmony.evaluation.results import EvalResult
    from harmony.metrics import CompatReport, IdentificationReport

def pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def threshold(t: float) -> str:
    return "all" if math.isinf(t) else f"{t:.4g}"


def compat_table(report: "CompatReport", title: str | None = None) -> Table:
    """The 2x2 table per FAR: FAR, VAL(v1,v1), VAL(v2,v2), VAL(v2->v1), VAL(v1->v2), compatible."""
    o, n = report.old_name, report.new_name
    if title is None:
        title = (f"compatibility {n} -> {o} over {report.n_pairs} listed pairs" if report.n_pairs is not None else
                 f"compatibility {n} -> {o} ({report.n_images} images, {report.n_identities} identities)")
    t = Table(title=title)
    t.add_column("FAR", justify="right")
    for h in (f"VAL({o},{o})", f"VAL({n},{n})", f"VAL({n}->{o})", f"VAL({o}->{n})"):
        t.add_column(h, justify="right")
    t.add_column("compatible", justify="center")
    for r in report.rows:
        far = f"{r.far:g}" + (" *" if r.old_old.zero_false_accepts else "")
        verdict = "[green]yes[/]" if r.compatible else "[red]no[/]"
        t.add_row(far, pct(r.old_old.val), pct(r.new_new.val), pct(r.new_old.val), pct(r.old_new.val), verdict)
    if any(r.old_old.zero_false_accepts for r in report.rows):
        t.caption = "* FAR * different pairs < 1: the figure rests on zero false accepts"
    return t


def harmonic_tables(report: "CompatReport", baseline: "CompatReport | None", eval_set: str) -> list[Table]:
    """A harmonic run's compatibility table, and its independently trained init model's (the baseline)."""
    out = [compat_table(report, f"{report.new_name} vs {report.old_name} on held-out identities ({eval_set})")]
    if baseline is not None:
        out.append(compat_table(baseline, f"baseline: independently trained {baseline.new_name} vs "
                                          f"{baseline.old_name}"))
    return out


def verdict_line(report: "CompatReport") -> str:
    """One line: compatible at every FAR, or the verdict per FAR."""
    n, o = report.new_name, report.old_name
    verdict = report.compatible
    if all(verdict.values()):
        return f"[green]{n} is compatible with {o}[/] at every FAR measured (VAL({n}->{o}) >= VAL({o},{o}))"
    return f"{n} compatible with {o}: " + ", ".join(
        f"FAR {f:g}: {'[green]yes[/]' if ok else '[red]no[/]'}" for f, ok in verdict.items())


def identification_table(title: str, rows: Sequence[tuple[str, Mapping[int, float]]],
                         first: str = "probe -> gallery") -> Table:
    """Top-k accuracy: one row per (label, {k: accuracy}), one column per k (those of the first row)."""
    t = Table(title=title)
    t.add_column(first)
    ks = sorted(rows[0][1]) if rows else []
    for k in ks:
        t.add_column(f"top-{k}", justify="right")
    for label, acc in rows:
        t.add_row(label, *(pct(acc[k]) for k in ks))
    return t


def split_identification_table(report: "IdentificationReport") -> Table:
    """Old gallery (first images per identity) vs probes: old->old, new->new, new->old."""
    return identification_table(
        f"identification: gallery = first {report.gallery_per_identity} image(s) per identity "
        f"({report.n_gallery} items), {report.n_probes} probes",
        [(f"{r.probe_version} -> {r.gallery_version}", {k: r.accuracy[k] for k in report.ks}) for r in report.rows])


def leave_one_out_table(r: "EvalResult") -> Table:
    """Each version's leave-one-out top-k over a labelled set."""
    return identification_table("identification (leave-one-out)",
                                [(v.name, v.top_k) for v in r.versions if v.top_k], first="version")


def val_table(r: "EvalResult") -> Table:
    """VAL@FAR and t* per version and FAR."""
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
            cells += [pct(x.val) + (" *" if x.zero_false_accepts else ""), threshold(x.threshold)]
        t.add_row(v.name, str(v.dim), str(v.image_size), *cells)
    t.caption = "accept a pair when D < t* (squared L2)" + (
        "; * FAR x different pairs < 1: the figure rests on zero false accepts" if zero else "")
    return t


def clustering_table(r: "EvalResult") -> Table:
    t = Table(title="clustering: average linkage cut at each version's t* for FAR 1e-3, pairwise scores")
    for col in ("version", "threshold", "clusters", "singletons", "identities", "precision", "recall", "F1"):
        t.add_column(col, justify="left" if col == "version" else "right")
    for v in r.versions:
        c = v.clustering
        if c is not None:
            t.add_row(v.name, threshold(c.threshold), str(c.n_clusters), str(c.n_singletons), str(c.n_identities),
                      pct(c.scores.precision), pct(c.scores.recall), pct(c.scores.f1))
    return t


def lfw_table(r: "EvalResult") -> Table:
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
                  f"{threshold(min(res.thresholds))}..{threshold(max(res.thresholds))}")
    return t
