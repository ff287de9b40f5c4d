"""Shared CLI plumbing: the console, the --registry option and one-line error handling."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

RegistryOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--registry",
        envvar="HARMONY_REGISTRY",
        help="Registry root folder (default ./registry).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


def registry_root(path: Optional[Path]) -> Path:
    """Resolve the registry root: flag, then $HARMONY_REGISTRY, then ./registry."""
    if path is not None:
        return Path(path)
    env = os.environ.get("HARMONY_REGISTRY")
    return Path(env) if env else Path("registry")


def handle_errors(fn: F) -> F:
    """Turn HarmonyError (and a few user-caused OS errors) into one red line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from harmony.errors import HarmonyError

        try:
            return fn(*args, **kwargs)
        except HarmonyError as e:
            err_console.print(f"[bold red]error:[/] {e.message}" + (f" [dim](fix: {e.hint})[/]" if e.hint else ""),
                              highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]; re-run the same command to resume where it is resumable")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def quiet_lightning(quiet: bool) -> None:
    """Rich logging for harmony; Lightning's banners, tips and known-benign warnings silenced."""
    import logging
    import warnings

    from rich.logging import RichHandler

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False, show_time=False)], force=True)
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # a frozen body, on purpose
