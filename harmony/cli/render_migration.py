"""Rich rendering of a migration report dict (harmony.migration.report builds it, the registry stores it).

The identification, top-1 and flip parts are the same renderers `harmony eval` uses (cli/tables.py)."""

from __future__ import annotations

from typing import Any


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def report_renderables(report: dict[str, Any]) -> list[Any]:
    """Rich tables (and one-line notes) for a report dict, as stored in the registry."""
    from rich.table import Table  # imported here: `harmony --help` stays fast

    from harmony.cli.tables import flips_table, gain, gain_note, split_identification_table, top1_line

    if not report:
        return ["no report yet: it is computed when the backfill completes"]
    if report.get("mode") == "transform":
        return transform_renderables(report)
    s, t = report["source"], report["target"]
    where = report.get("data", "?")
    n = f"{report.get('n_items', 0)} items, {report.get('n_identities', 0)} identities"
    if report.get("sampled"):
        n += f", a seeded sample of {report['candidates']}"
    out: list[Any] = []
    if "verification" in report:
        tab = Table(title=f"verification on {where} ({n}; vectors {report.get('vectors', '?')})")
        tab.add_column("FAR", justify="right")
        tab.add_column(f"before VAL({s},{s})", justify="right")
        tab.add_column(f"mixed VAL({t}->{s})", justify="right")
        tab.add_column(f"after VAL({t},{t})", justify="right")
        tab.add_column(f"{t}->{s} >= {s},{s}", justify="center")
        tab.add_column("gain recovered", justify="right")
        rows = report["verification"]
        for r in rows:
            tab.add_row(f"{r['far']:g}" + (" *" if r["zero_false_accepts"] else ""), _pct(r["before"]),
                        _pct(r["cross"]), _pct(r["after"]), "[green]yes[/]" if r["compatible_here"] else "[red]no[/]",
                        gain(r.get("gain_recovered")) if "gain_recovered" in r else "-")
        notes = [gain_note(t, s)] if any("gain_recovered" in r and r["gain_recovered"] is None for r in rows) else []
        if any(r["zero_false_accepts"] for r in rows):
            notes.append("* FAR x different pairs < 1: the figure rests on zero false accepts")
        tab.caption = "\n".join(notes) or None
        out.append(tab)
    else:
        out.append(f"verification: not measured ({report.get('verification_error', 'no data')})")
    ident = report.get("identification")
    if ident:
        out += [split_identification_table(ident), top1_line(ident)]
    elif "identification_error" in report:
        out.append(f"identification: not measured ({report['identification_error']})")
    if report.get("flips"):
        out.append(flips_table(report["flips"], all_in="`harmony migrate status --json`"))
    elif "flips_error" in report:
        out.append(f"negative flips: not measured ({report['flips_error']})")
    return out


def _f(x: float | None, pct: bool = True) -> str:
    return "-" if x is None else (_pct(x) if pct else f"{x:.2f}")


def transform_renderables(report: dict[str, Any]) -> list[Any]:
    """A conversion's report (``migrate gallery --via``): the gallery's VAL before and after the
    conversion, the table the transform recorded, the one measured on --eval-data."""
    from rich.table import Table

    s, t, via = report["source"], report["target"], report["via"]
    out: list[Any] = [f"vectors: {report.get('vectors', '?')}"]
    n = f"{report.get('n_items', 0)} items, {report.get('n_identities', 0)} identities"
    if report.get("sampled"):
        n += f", a seeded sample of {report['candidates']}"
    if "gallery" in report:
        tab = Table(title=f"verification on gallery items ({n}): stored vs converted vectors")
        tab.add_column("FAR", justify="right")
        tab.add_column(f"before VAL({s},{s})", justify="right")
        tab.add_column(f"converted VAL(h({s}),h({s}))", justify="right")
        for r in report["gallery"]:
            tab.add_row(f"{r['far']:g}" + (" *" if r["zero_false_accepts"] else ""), _pct(r["before"]),
                        _pct(r["converted"]))
        if any(r["zero_false_accepts"] for r in report["gallery"]):
            tab.caption = "* FAR x different pairs < 1: the figure rests on zero false accepts"
        out.append(tab)
    else:
        out.append(f"verification on gallery items: not measured ({report.get('gallery_error', 'no data')})")
    tables = [(f"transform {via} as recorded on {(report.get('transform') or {}).get('dataset') or '?'}",
               (report.get("transform") or {}).get("rows") or [])]
    if "eval" in report:
        tables.append((f"transform {via} measured on {report['eval'].get('dataset')}", report["eval"].get("rows", [])))
    for title, rows in tables:
        if not rows:
            continue
        tab = Table(title=f"{title}: VAL at FAR (probes,gallery)")
        for c in ("FAR", f"{s},{s}", f"{t},{t}", f"{t}->h({s})", f"h({s}),h({s})", "gain", f"{t}->{s} no h"):
            tab.add_column(c, justify="right", no_wrap=True)
        for r in rows:
            tab.add_row(f"{r['far']:g}" + (" *" if r.get("zero_false_accepts") else ""), _pct(r["val_from_from"]), _pct(r["val_to_to"]), _pct(r["val_to_mapped"]),
                        _pct(r["val_mapped_mapped"]), _f(r.get("gain_recovered"), pct=False),
                        _f(r.get("val_to_from_without_h")))
        if any(r.get("zero_false_accepts") for r in rows):
            tab.caption = "* FAR x different pairs < 1: the figure rests on zero false accepts"
        out.append(tab)
    return out


def curve_renderables(report: dict[str, Any]) -> list[Any]:
    """The backfill-curve report (harmony.migration.curve.CurveReport.as_dict) as rich tables."""
    from rich.table import Table

    curves = report["curves"]
    s, t, far = report["source"], report["target"], report["far"]
    n = f"{report['n_items']} items, {report['n_identities']} identities, {report['n_probes']} probes"
    if report.get("sampled"):
        n += f", a seeded sample of {report['candidates']}"
    tab = Table(title=f"backfill {s} -> {t}: mixed-search top-1 / VAL@FAR={far:g} by share backfilled ({n})")
    tab.add_column("backfilled", justify="right")
    for c in curves:
        tab.add_column(f"{c['order']} top-1", justify="right")
        tab.add_column(f"{c['order']} VAL", justify="right")
    for i, f in enumerate(curves[0]["fractions"]):
        tab.add_row(f"{100 * f:.0f}%", *(x for c in curves for x in (_pct(c["top1"][i]), _pct(c["val"][i]))))
    if report.get("zero_false_accepts"):
        tab.caption = f"VAL rests on zero false accepts: FAR {far:g} x different pairs < 1"
    area = Table(title="area under each curve (fraction 0..1; 1.0 = perfect from the start)")
    area.add_column("order")
    area.add_column("top-1 area", justify="right")
    area.add_column(f"VAL@{far:g} area", justify="right")
    for c in curves:
        label = c["order"] + (f" ({report['score']})" if c["order"] == "uncertainty" and report.get("score") else "")
        label += f" (seed {report['seed']})" if c["order"] == "random" else ""
        area.add_row(label, f"{c['auc_top1']:.4f}", f"{c['auc_val']:.4f}")
    out: list[Any] = [tab, area]
    if report.get("mixed_served") is False:
        out.append(f"note: {report.get('verdict', 'no passing verdict')}; the product serves no mixed search here "
                   f"(queries stay on {s} until the swap), so these curves are what it would give, not what users get")
    d = report.get("uncertainty_minus_random")
    if d:
        def word(x: float) -> str:
            return "uncertainty better" if x > 0 else ("random better" if x < 0 else "equal")

        out.append(f"uncertainty - random: {d['auc_top1']:+.4f} top-1 area ({word(d['auc_top1'])}), "
                   f"{d['auc_val']:+.4f} VAL area ({word(d['auc_val'])})")
    return out
