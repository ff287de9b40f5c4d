"""Progress without a UI: library code reports through a callback, the CLI draws the bars.

Long work (embedding a folder, a backfill, training epochs) takes ``progress: ProgressFn | None``
and calls it with a :class:`Tick` after each step. ``None`` means nobody is watching. The CLI
passes the callback of ``harmony.cli.progress`` (terminal bars); tests pass a list's ``append``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping


@dataclass(frozen=True)
class Tick:
    """One step of a task: ``done`` of ``total`` units (``total`` None: unknown yet).

    ``task`` names the work as a person reads it ("embedding with v2", "backfill -> v2"); the
    CLI keeps one bar per task name. ``fields`` carries extra figures (rate, share of time).
    """

    task: str
    done: int
    total: int | None
    unit: str = "items"
    fields: Mapping[str, float] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total


ProgressFn = Callable[[Tick], None]


def tick(progress: ProgressFn | None, task: str, done: int, total: int | None, unit: str = "items",
         **fields: float) -> None:
    """Report one step when someone listens (a no-op for ``progress=None``)."""
    if progress is not None:
        progress(Tick(task, int(done), None if total is None else int(total), unit, dict(fields)))
