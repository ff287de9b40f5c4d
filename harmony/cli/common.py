"""Shared CLI plumbing: the consoles, the options every group takes, opening the registry, JSON
output, rich tables and one-line error handling."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Collection, Iterable, Optional, Sequence, TypeVar

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from harmony.registry import Registry

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
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1 ... (default: the GPU if any).")]


def registry_root(path: Optional[Path]) -> Path:
    """Resolve the registry root: flag, then $HARMONY_REGISTRY, then ./registry."""
    if path is not None:
        return Path(path)
    env = os.environ.get("HARMONY_REGISTRY")
    return Path(env) if env else Path("registry")


def open_registry(registry: Optional[Path]) -> "Registry":
    """The Registry at the resolved root (duckdb is imported here, not at CLI import)."""
    from harmony.registry import Registry

    return Registry.open(registry_root(registry))


def plain(value: Any) -> Any:
    """Dataclasses, dates, paths and numpy scalars as JSON-ready values (NaN becomes null)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if not f.name.startswith("_")}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and value != value:
        return None
    return value


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(plain(value), indent=1, default=str))


def table(title: Optional[str], columns: Iterable[str], right: Collection[str] = (), no_wrap: Collection[str] = (),
          **kwargs: Any) -> Table:
    """A rich Table with these column headers; those in ``right`` (numbers) are right-justified."""
    t = Table(title=title, **kwargs)
    for col in columns:
        t.add_column(col, justify="right" if col in right else "left", no_wrap=col in no_wrap)
    return t


def field_table(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    """A two-column ``field | value`` table without a header (one record)."""
    t = Table(title=title, show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    for k, v in rows:
        t.add_row(k, v)
    return t


def print_first(header: str, lines: Sequence[str], total: Optional[int] = None, more: str = "",
                limit: int = 20) -> None:
    """On stderr: a yellow header, the first ``limit`` lines, then how many of ``total`` were left out."""
    total = len(lines) if total is None else total
    err_console.print(f"[yellow]{header}:[/]", highlight=False)
    for line in lines[:limit]:
        err_console.print(f"  {line}", highlight=False, soft_wrap=True)
    if total > limit:
        err_console.print(f"  ... and {total - limit} more{more}", highlight=False)


def handle_errors(fn: F) -> F:
    """Turn HarmonyError, and the OSErrors and DuckDB errors a user can cause (a full disk, a
    read-only registry), into one red line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from harmony.errors import HarmonyError, from_foreign_error

        try:
            return fn(*args, **kwargs)
        except HarmonyError as e:
            _print_error(e)
            raise typer.Exit(2) from None
        except Exception as e:
            typed = from_foreign_error(e)
            if typed is None:
                raise
            logging.getLogger("harmony").debug("%s at the CLI boundary", type(e).__name__, exc_info=True)
            _print_error(typed)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]; re-run the same command to resume where it is resumable")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _print_error(e: Any) -> None:
    err_console.print(f"[bold red]error:[/] {e.message}" + (f" [dim](fix: {e.hint})[/]" if e.hint else ""),
                      highlight=False, soft_wrap=True)


def quiet_lightning(quiet: bool) -> None:
    """Rich logging for harmony; Lightning's banners, tips and known-benign warnings silenced."""
    import logging
    import warnings

    from rich.logging import RichHandler

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)], force=True)
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning",
                  "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                  "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # a frozen body, on purpose
