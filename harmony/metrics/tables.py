"""Rich tables for the metric reports (rendering only; the numbers come from the reports)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

    from harmony.metrics.compat import CompatReport, IdentificationReport


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def compat_table(report: "CompatReport") -> "Table":
    """Columns: FAR, VAL(v1,v1), VAL(v2,v2), VAL(v2->v1), VAL(v1->v2), compatible."""
    from rich.table import Table

    o, n = report.old_name, report.new_name
    t = Table(title=f"compatibility {n} -> {o} ({report.n_images} images, {report.n_identities} identities)")
    t.add_column("FAR", justify="right")
    for h in (f"VAL({o},{o})", f"VAL({n},{n})", f"VAL({n}->{o})", f"VAL({o}->{n})"):
        t.add_column(h, justify="right")
    t.add_column("compatible", justify="center")
    for r in report.rows:
        far = f"{r.far:g}" + (" *" if r.old_old.zero_false_accepts else "")
        verdict = "[green]yes[/]" if r.compatible else "[red]no[/]"
        t.add_row(far, _pct(r.old_old.val), _pct(r.new_new.val), _pct(r.new_old.val),
                  _pct(r.old_new.val), verdict)
    if any(r.old_old.zero_false_accepts for r in report.rows):
        t.caption = "* FAR * different pairs < 1: the figure rests on zero false accepts"
    return t


def identification_table(report: "IdentificationReport") -> "Table":
    """One row per probe->gallery setting, one column per top-k."""
    from rich.table import Table

    t = Table(title=f"identification: gallery = first {report.gallery_per_identity} image(s) per identity "
                    f"({report.n_gallery} items), {report.n_probes} probes")
    t.add_column("probe -> gallery")
    for k in report.ks:
        t.add_column(f"top-{k}", justify="right")
    for r in report.rows:
        t.add_row(f"{r.probe_version} -> {r.gallery_version}", *(_pct(r.accuracy[k]) for k in report.ks))
    return t
