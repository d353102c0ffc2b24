"""Progress of long jobs (scrub, gc, rebuild, bootstrap) for the operator.

In a terminal: a bar per unit with count, rate and ETA (rich), notes printed above the bars.
Otherwise (a pipe, a log, CI): plain lines, at most one progress line per second plus the
last one, and every note.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final, TextIO

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    ProgressColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgressBar
from rich.progress import Task as RichTask
from rich.text import Text

from node.admin.jobs import LineProgress, NoProgress
from storage.ops.jobstate import Progress

LINE_INTERVAL_S: Final = 1.0


class ThrottledLines(LineProgress):
    """:class:`LineProgress` with at most one progress line per interval (and the last)."""

    def __init__(
        self,
        out: TextIO = sys.stderr,
        interval_s: float = LINE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(out)
        self._interval_s = interval_s
        self._clock = clock
        self._last_line: float | None = None  # the first figures are always shown

    def advance(self, done: int, total: int | None, unit: str) -> None:
        now = self._clock()
        finished = total is not None and done >= total
        due = self._last_line is None or now - self._last_line >= self._interval_s
        if finished or due:
            self._last_line = now
            super().advance(done, total, unit)


class _AmountColumn(ProgressColumn):
    """``done/total unit`` and the rate, in bytes (decimal units) or in the job's unit."""

    def render(self, task: RichTask) -> Text:
        unit = str(task.fields.get("unit", ""))
        speed = task.finished_speed or task.speed or 0.0
        if unit == "bytes":
            of_total = "" if task.total is None else f"/{decimal(int(task.total))}"
            return Text(f"{decimal(int(task.completed))}{of_total}  {decimal(int(speed))}/s")
        of_total = "" if task.total is None else f"/{int(task.total)}"
        return Text(f"{int(task.completed)}{of_total} {unit}  {speed:,.0f} {unit}/s")


class RichProgress:
    """Bars with rate and ETA on a terminal; one bar per unit a job reports."""

    def __init__(self, title: str, console: Console) -> None:
        self._title = title
        self._bars = RichProgressBar(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            _AmountColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {}
        self._started = False

    def _start(self) -> None:
        if not self._started:
            self._bars.start()
            self._started = True

    def advance(self, done: int, total: int | None, unit: str) -> None:
        self._start()
        task = self._tasks.get(unit)
        if task is None:
            task = self._bars.add_task(f"{self._title} {unit}", total=total, unit=unit)
            self._tasks[unit] = task
        self._bars.update(task, completed=done, total=total)

    def note(self, message: str) -> None:
        self._start()
        self._bars.console.print(message, markup=False, highlight=False)

    def close(self) -> None:
        if self._started:
            self._bars.stop()
            self._started = False


@contextmanager
def cli_progress(title: str, *, quiet: bool) -> Iterator[Progress]:
    """Progress of a command: none with --json (stdout is for the report), else as below."""
    if quiet:
        yield NoProgress()
        return
    with job_progress(title) as progress:
        yield progress


@contextmanager
def job_progress(title: str, out: TextIO = sys.stderr) -> Iterator[Progress]:
    """The progress display for a job run from the command line (``title``: its name)."""
    if not out.isatty():
        yield ThrottledLines(out)
        return
    bars = RichProgress(title, Console(file=out))
    try:
        yield bars
    finally:
        bars.close()
