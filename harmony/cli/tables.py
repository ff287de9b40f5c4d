"""Rich tables of the metric records (rendering only; every number comes from the record).

The library returns dataclasses (``CompatReport``, ``IdentificationReport``, ``EvalResult``);
the commands that show them (eval, train harmonic, demo) build their tables here.
Tests: tests/cli/test_tables.py.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from rich.table import Table

if TYPE_CHECKING:
    from harmony.evaluation.results import EvalResult
    from harmony.metrics import CompatReport, IdentificationReport
    from harmony.registry.matrix import VersionMatrix

TOP_IDENTITIES = 3  # identities named per flip row (all of them in --json)
FIRST_IDS = 5  # flipped query ids shown per flip row

def pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def threshold(t: float) -> str:
    return "all" if math.isinf(t) else f"{t:.4g}"


def gain(g: float | None) -> str:
    """A share of the gain recovered (``harmony.metrics.gain_recovered``); None is undefined."""
    return "undefined" if g is None else f"{g:.2f}"


def gain_note(new: str, old: str) -> str:
    """The caption line that explains an undefined gain cell."""
    return f"gain recovered = (VAL({new}->{old}) - VAL({old},{old})) / (VAL({new},{new}) - VAL({old},{old})); " \
           f"undefined: {new} not better than {old} here"


def compat_table(report: "CompatReport", title: str | None = None) -> Table:
    """The 2x2 table per FAR: FAR, VAL(v1,v1), VAL(v2,v2), VAL(v2->v1), VAL(v1->v2), compatible, and
    the share of v2's gain that v2->v1 queries recover."""
    o, n = report.old_name, report.new_name
    if title is None:
        title = (f"compatibility {n} -> {o} over {report.n_pairs} listed pairs" if report.n_pairs is not None else
                 f"compatibility {n} -> {o} ({report.n_images} images, {report.n_identities} identities)")
    t = Table(title=title)
    t.add_column("FAR", justify="right")
    for h in (f"VAL({o},{o})", f"VAL({n},{n})", f"VAL({n}->{o})", f"VAL({o}->{n})"):
        t.add_column(h, justify="right", overflow="fold")  # a narrow terminal folds headers, never cuts them
    t.add_column("compatible", justify="center", no_wrap=True, min_width=10)
    t.add_column("gain recovered", justify="right", overflow="fold")
    for r in report.rows:
        far = f"{r.far:g}" + (" *" if r.old_old.zero_false_accepts else "")
        verdict = "[green]yes[/]" if r.compatible else "[red]no[/]"
        t.add_row(far, pct(r.old_old.val), pct(r.new_new.val), pct(r.new_old.val), pct(r.old_new.val), verdict,
                  gain(r.gain_recovered))
    notes = [gain_note(n, o)] if any(r.gain_recovered is None for r in report.rows) else []
    if any(r.old_old.zero_false_accepts for r in report.rows):
        notes.append("* FAR * different pairs < 1: the figure rests on zero false accepts")
    t.caption = "\n".join(notes) or None
    return t


def harmonic_tables(report: "CompatReport", baseline: "CompatReport | None", eval_set: str,
                    identification: Mapping[str, Any] | None = None,
                    flips: Mapping[str, Any] | None = None) -> list[Any]:
    """A harmonic run's compatibility table, and its independently trained init model's (the
    baseline); then, when measured, the identification split with its top-1 verdict and the
    negative flips (``IdentificationReport.as_dict()``, ``FlipReport.as_dict()``)."""
    out: list[Any] = [compat_table(report, f"{report.new_name} vs {report.old_name} on held-out identities "
                                           f"({eval_set})")]
    if baseline is not None:
        out.append(compat_table(baseline, f"baseline: independently trained {baseline.new_name} vs "
                                          f"{baseline.old_name}"))
    if identification is not None:
        out += [split_identification_table(identification), top1_line(identification)]
    if flips is not None:
        out.append(flips_table(flips, all_in="`harmony registry show " + report.new_name + " --json`"))
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


def split_identification_table(report: "Mapping[str, Any] | IdentificationReport") -> Table:
    """Old gallery (first images per identity) vs probes: old->old, new->new, new->old
    (an ``IdentificationReport`` or its ``as_dict()``, as a migration report stores it)."""
    d = report if isinstance(report, Mapping) else report.as_dict()
    return identification_table(
        f"identification: gallery = first {d['gallery_per_identity']} image(s) per identity "
        f"({d['n_gallery']} items), {d['n_probes']} probes",
        [(f"{r['probe']} -> {r['gallery']}", {k: r["accuracy"][str(k)] for k in d["ks"]}) for r in d["rows"]])


def top1_line(report: "Mapping[str, Any] | IdentificationReport") -> str:
    """The top-1 verdict: new probes on the old gallery against the old version's own top-1."""
    d = report if isinstance(report, Mapping) else report.as_dict()
    k = str(min(d["ks"]))
    oo, _, no = d["rows"]
    o, n = oo["probe"], no["probe"]
    ok = no["accuracy"][k] >= oo["accuracy"][k]
    return (f"top-{k} identification {n}->{o} {pct(no['accuracy'][k])} vs {o}->{o} {pct(oo['accuracy'][k])}: "
            + (f"[green]{n} queries find {o}'s gallery at least as well as {o} does[/]" if ok else
               f"[red]{n} queries on {o}'s gallery identify worse than {o} itself[/]"))


def _listing(items: Sequence[Any], shown: int) -> str:
    text = ", ".join(str(x) for x in items[:shown])
    return text + (f" (+{len(items) - shown} more)" if len(items) > shown else "") if items else "-"


def flips_table(flips: Mapping[str, Any], all_in: str = "--json") -> Table:
    """Negative flips (``FlipReport.as_dict()``): per comparison the count, the rate, the identities
    with most flips and the first flipped query ids (all of them in ``all_in``)."""
    o = flips["old"]
    t = Table(title=f"negative flips: queries {o} gets right at top-1 ({flips['n_old_correct']} of "
                    f"{flips['n_queries']}) that become wrong")
    for col in ("probe -> gallery", "flips", "rate", "most flipped identities", "first flipped queries"):
        t.add_column(col, justify="right" if col in ("flips", "rate") else "left")
    for key, when in (("new_flips", "gallery re-embedded"), ("cross_flips", "old gallery: mixed search")):
        f = flips[key]
        per = [f"{name} ({c})" for name, c in f["per_identity"].items()]
        t.add_row(f"{f['probe']} -> {f['gallery']} ({when})", str(f["n_flips"]), pct(f["rate"]),
                  _listing(per, TOP_IDENTITIES), _listing(f["ids"], FIRST_IDS))
    t.caption = f"a flip: right with {o} -> {o}, wrong here (top-1, ties against the probe); every id in {all_in}"
    return t


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


def matrix_table(m: "VersionMatrix") -> Table:
    """The version matrix: one row per probe kind, one column per gallery version, VAL@FAR or
    "unmeasured" (never inferred); diagonal cells in bold."""
    t = Table(title=f"VAL@FAR={m.far:g} on {m.dataset}: probe version (rows) against gallery version (columns)")
    t.add_column("probe \\ gallery", no_wrap=True)
    for g in m.galleries:
        t.add_column(g, justify="right", no_wrap=True)
    for p in m.probes:
        cells = []
        for g in m.galleries:
            c = m.cell(p, g)
            text = "[dim]unmeasured[/]" if c is None else pct(c.val)
            cells.append(f"[bold]{text}[/]" if c is not None and p.label == g else text)
        t.add_row(p.label, *cells)
    t.caption = ("diagonal: VAL(v,v) from v's evaluation on the dataset (else a compatibility row's own cell); "
                 "off it: measured VAL(probe->gallery); a pair never measured is not inferred")
    return t
