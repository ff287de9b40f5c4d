"""`harmony demo`: the whole story (train v1, v2-base, harmonic v2; build and migrate a gallery)."""

from __future__ import annotations

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
    """Run the harmony story end to end on built-in synthetic faces (about 10 minutes on 2 CPU cores).

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
    console.print(f"harmony demo in [bold]{out}[/] (its own registry: {out / 'registry'})")
    res = run_demo(out, say=console.print, progress=not quiet, recipes=recipes, max_epochs=max_epochs)
    t = table("demo timings (s)", ("step", "seconds"), right=("seconds",))
    for k, v in res.timings.items():
        t.add_row(k, f"{v:.0f}")
    console.print(t)
    console.print(f"VAL vs FAR curves: [bold]{res.plot}[/]")
    console.print(f"explore: harmony registry list --registry {out / 'registry'}")
