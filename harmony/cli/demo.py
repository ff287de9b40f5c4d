"""`harmony demo`: the whole story (train v1, v2-base, harmonic v2; build and migrate a gallery)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Optional

import typer

from harmony.cli.common import QuietOpt, console, handle_errors, quiet_lightning, table


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

    from harmony.demo import run_demo

    quiet_lightning(quiet)
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="harmony-demo-"))
    elif (out / "registry" / "harmony.duckdb").exists():
        from harmony.errors import AlreadyExists

        raise AlreadyExists(f"{out} already holds a demo registry", hint="pass a new --out folder")
    out.mkdir(parents=True, exist_ok=True)
    said: list[object] = []

    def say(x: object) -> None:  # shown now, and kept for demo.log
        said.append(x)
        console.print(x)

    say(f"harmony demo in [bold]{out}[/] (its own registry: {out / 'registry'})")
    res = run_demo(out, say=say, progress=not quiet, recipes=recipes, max_epochs=max_epochs)
    t = table("demo timings (s)", ("step", "seconds"), right=("seconds",))
    for k, v in res.timings.items():
        t.add_row(k, f"{v:.0f}")
    say(t)
    say(f"VAL vs FAR curves: [bold]{res.plot}[/]; what was measured: {out / 'summary.json'}; this text: "
        f"{out / 'demo.log'}")
    say(f"explore: harmony registry list --registry {out / 'registry'}")
    _save_log(said, out / "demo.log")


def _save_log(said: list[object], path: Path) -> None:
    """The story as plain text (tables included), so a run can be read or pasted later."""
    from rich.console import Console

    from harmony.io import atomic_write_text

    rec = Console(record=True, width=110, file=io.StringIO(), color_system=None)
    for x in said:
        rec.print(x)
    atomic_write_text(path, rec.export_text())
