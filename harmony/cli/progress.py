"""Rich progress bars for the library's progress callbacks (harmony.progress)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from harmony.progress import ProgressFn, Tick


@contextmanager
def rich_progress(enabled: bool = True) -> Iterator[ProgressFn | None]:
    """A callback drawing one bar per task on stderr (items/s, ETA); None when disabled or when
    stderr is not a terminal, so piped and ``--json`` output stays clean."""
    from rich.console import Console

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(), TimeElapsedColumn(),
                    console=console, transient=True)
    tasks: dict[str, tuple[TaskID, float]] = {}

    def on_tick(t: Tick) -> None:
        if t.task not in tasks:
            tasks[t.task] = (bars.add_task(t.task, total=t.total, rate=""), time.perf_counter())
        task_id, t0 = tasks[t.task]
        elapsed = time.perf_counter() - t0
        rate = f"{t.done / elapsed:,.0f} {t.unit}/s" if elapsed > 0 and t.done else ""
        extra = "  ".join(f"{k} {v:.0%}" if k.endswith("share") else f"{k} {v:,.3g}" for k, v in t.fields.items())
        bars.update(task_id, completed=t.done, total=t.total, rate=f"{rate}  {extra}".strip())

    with bars:
        yield on_tick
