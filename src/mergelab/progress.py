"""Progress reporting for long work: one bar at a time, owned by the engine or a search loop.

Library code asks for a bar with :func:`progress`; the CLI decides whether bars are shown
(``set_progress_enabled``), so the library never prints by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_state = {"enabled": False}


def set_progress_enabled(enabled: bool) -> None:
    """Show (True) or hide (False) progress bars; the CLI calls this, the library never does."""
    _state["enabled"] = enabled


class Bar(Protocol):
    def advance(self, steps: float = 1, *, info: str | None = None) -> None: ...


class _NullBar:
    def advance(self, steps: float = 1, *, info: str | None = None) -> None:
        return None


class _RichBar:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, steps: float = 1, *, info: str | None = None) -> None:
        if info is None:
            self._progress.advance(self._task, steps)
        else:
            self._progress.update(self._task, advance=steps, info=info)


@contextmanager
def progress(description: str, total: float | None) -> Iterator[Bar]:
    """A progress bar over ``total`` steps, or a silent one when bars are disabled."""
    if not _state["enabled"]:
        yield _NullBar()
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total, info="")
        yield _RichBar(bar, task)
