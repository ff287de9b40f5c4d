"""`harmony demo`: the whole story (train v1, v2-base, harmonic v2; build and migrate a gallery)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from harmony.cli.common import QuietOpt, console, handle_errors, quiet_lightning, table

if TYPE_CHECKING:
    from harmony.demo import Said


@handle_errors
def demo_command(
    out: Annotated[Optional[Path], typer.Option("--out", help="Keep everything here (registry, data, plots, "
                                                "logs). Default: a fresh temporary folder.")] = None,
    max_epochs: Annotated[Optional[int], typer.Option("--max-epochs", min=1, help="Cap every recipe's epochs "
                                                      "(a quicker, weaker demo).")] = None,
    recipes: Annotated[Path, typer.Option("--recipes", help="Folder with base-tiny.yaml, base-tiny-large.yaml, "
                                          "harmonic-tiny.yaml.")] = Path(__file__).resolve().parents[2] / "recipes",
    quiet: QuietOpt = False,
) -> None:
    """Run the harmony story end to end on built-in synthetic faces (under 10 minutes on 2 CPU cores).

    Example: harmony demo --out demo-run
    """
    import tempfile

    from harmony.cli.progress import rich_progress
    from harmony.demo import run_demo

    quiet_lightning(quiet)
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="harmony-demo-"))
    elif (out / "registry" / "harmony.duckdb").exists():
        from harmony.errors import AlreadyExists

        raise AlreadyExists(f"{out} already holds a demo registry", hint="pass a new --out folder")
    out.mkdir(parents=True, exist_ok=True)
    shown: list[object] = []

    def show(x: object) -> None:  # on screen now, and kept for demo.log
        shown.append(x)
        console.print(x)

    def say(x: Said) -> None:
        for part in renderables(x):
            show(part)

    show(f"harmony demo in [bold]{out}[/] (its own registry: {out / 'registry'})")
    with rich_progress(not quiet) as progress:
        res = run_demo(out, say=say, progress=progress, recipes=recipes, max_epochs=max_epochs)
    t = table("demo timings (s)", ("step", "seconds"), right=("seconds",))
    for k, v in res.timings.items():
        t.add_row(k, f"{v:.0f}")
    show(t)
    show(f"VAL vs FAR curves: [bold]{res.plot}[/]; what was measured: {out / 'summary.json'}; this text: "
         f"{out / 'demo.log'}")
    show(f"explore: harmony registry list --registry {out / 'registry'}")
    _save_log(shown, out / "demo.log")


def renderables(x: "Said") -> list[object]:
    """One piece of the demo's story as rich renderables (library strings are shown verbatim)."""
    from rich.text import Text

    from harmony.cli.tables import harmonic_tables
    from harmony.demo import Heading, HarmonicReports, MigrationReport
    from harmony.cli.render_migration import report_renderables

    if isinstance(x, Heading):
        return [Text(f"\n== {x.text}", style="bold cyan")]
    if isinstance(x, HarmonicReports):
        return list(harmonic_tables(x.report, x.baseline, x.eval_set, x.identification, x.flips))
    if isinstance(x, MigrationReport):
        return report_renderables(x.report)
    return [Text(str(x))]


def _save_log(shown: list[object], path: Path) -> None:
    """The story as plain text (tables included), so a run can be read or pasted later."""
    from rich.console import Console

    from harmony.io import atomic_write_text

    rec = Console(record=True, width=110, file=io.StringIO(), color_system=None)
    for x in shown:
        rec.print(x)
    atomic_write_text(path, rec.export_text())
