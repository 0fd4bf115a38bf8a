"""Terminal output shared by the CLI commands: results to stdout, errors and progress to stderr."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def error_line(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")


def warn_line(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}")


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


def table(title: str | None, records: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> Table:
    columns = list(columns or (records[0].keys() if records else []))
    result = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
    for column in columns:
        result.add_column(column, overflow="fold")
    for record in records:
        result.add_row(*["" if record.get(c) is None else str(record.get(c)) for c in columns])
    return result


class _Rate(TextColumn):
    """Items per second, the figure users compare runs by."""

    def __init__(self, unit: str) -> None:
        super().__init__("")
        self.unit = unit

    def render(self, task: Any) -> Any:
        speed = task.finished_speed or task.speed
        return f"{speed:,.0f} {self.unit}/s" if speed else f"- {self.unit}/s"


@contextmanager
def progress_bar(
    description: str, *, quiet: bool, unit: str = "files", lazy: bool = False
) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """Yields (set_total, advance) callbacks; draws a bar with rate and ETA on stderr unless quiet.

    No bar is drawn when stderr is not a terminal, so logs and pipes get only the result lines.

    The bar redraws from a thread of rich's. With `lazy`, that thread runs only from the first callback
    until the total is reached: a command that starts worker processes before it reports its total (or
    after its work) then starts them from a process with one thread, which may fork them. With the
    thread alive it has to spawn them instead (drumcat/workers.py): a fresh interpreter and its imports
    for each worker, which made `infer` slower in a terminal than in a pipe (README, Performance).
    """
    if quiet or not err.is_terminal:
        yield (lambda _total: None), (lambda _n: None)
        return
    columns = (
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        _Rate(unit), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=err, transient=False)
    task = progress.add_task(description, total=None)

    def shown() -> Progress:
        if lazy:
            progress.start()  # a no-op once started
        return progress

    def stop_if_done() -> None:
        if lazy and progress.finished:  # also a total of 0: nothing to wait for
            progress.stop()

    def set_total(total: int) -> None:
        shown().update(task, total=total)
        stop_if_done()

    def advance(count: int) -> None:
        shown().advance(task, count)  # advance, not update: rich caps its speed samples there
        stop_if_done()

    if not lazy:
        progress.start()
    try:
        yield set_total, advance
    finally:
        if progress.live.is_started:
            progress.stop()
