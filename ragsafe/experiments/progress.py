"""Progress display: one line per question, one per cell, or a live table; rates and ETAs."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ragsafe.experiments.execute import Cell
    from ragsafe.records import SampleRecord



def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Reporter:
    """Progress of cells: count, errors, rate and ETA. Subclasses render it."""

    def start(self, cells: list[Cell]) -> None:
        self.cells = cells
        self.total = sum(c.total for c in cells)
        self.n = 0

    def advance(self, cell: Cell, rec: SampleRecord) -> None:
        now = time.perf_counter()
        cell.t_first = cell.t_first or now
        cell.t_last = now
        cell.done += 1
        cell.errors += bool(rec.error)
        self.n += 1

    def stopped(self, cell: Cell, message: str) -> None:
        """A cell was stopped early (repeated errors no retry can fix): say so once."""
        getattr(self, "progress", log)(message)

    def close(self) -> None:
        pass


def error_kind(rec) -> str:
    """"error: context_overflow" for an error record (its kind), "error" when it has none."""
    kind = (rec.get("error") or {}).get("kind")
    return f"error: {kind}" if kind else "error"


def rate_eta(cell: Cell, started: float) -> tuple[float | None, float | None]:
    """Questions per second since ``started`` and seconds left at that rate."""
    el = (cell.t_last or started) - started
    if cell.done == 0 or el <= 0:
        return None, None
    rate = cell.done / el
    return rate, (cell.total - cell.done) / rate


def _fmt_eta(s: float | None) -> str:
    if s is None:
        return "-:--"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class QuestionLog(Reporter):
    """A line per finished question (the `ragsafe run` log)."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self.progress = progress

    def advance(self, cell: Cell, rec: SampleRecord) -> None:
        super().advance(cell, rec)
        mark = error_kind(rec) if rec.error else ("ok" if rec.correct else "wrong")
        self.progress(f"[{self.n}/{self.total}] {cell.label} {rec.question_id}: {rec.letter} "
                      f"({mark}, {rec.seconds:.1f}s)")


class CellLog(Reporter):
    """A line per cell when it finishes, and a status line of all cells every ``interval`` seconds."""

    def __init__(self, progress: Callable[[str], None], interval: float = 10.0) -> None:
        self.progress = progress
        self.interval = interval

    def start(self, cells: list[Cell]) -> None:
        super().start(cells)
        self.t0 = self.last = time.perf_counter()

    def line(self, c: Cell) -> str:
        rate, eta = rate_eta(c, self.t0)
        return (f"{c.label}: {c.done}/{c.total}" + (f", {c.errors} errors" if c.errors else "")
                + (f", {rate:.2f} q/s, ETA {_fmt_eta(eta)}" if rate else ""))

    def advance(self, cell: Cell, rec: SampleRecord) -> None:
        super().advance(cell, rec)
        if cell.done == cell.total:
            self.progress("done " + self.line(cell))
        now = time.perf_counter()
        if now - self.last >= self.interval and self.n < self.total:
            self.last = now
            busy = [c for c in self.cells if c.done < c.total]
            self.progress(f"[{self.n}/{self.total}] " + "; ".join(self.line(c) for c in busy[:8])
                          + (f"; ... {len(busy) - 8} more cells" if len(busy) > 8 else ""))


class RichCells(Reporter):
    """A live rich table on stderr: one bar per cell with count, errors, rate and ETA.

    The table is redrawn from :meth:`advance` at most every ``min_interval`` seconds, on the event
    loop's thread, and not at all while nothing finishes. rich's own refresh thread (4 redraws a
    second, each a full table layout) took more of the CLI's CPU than the rest of the display, grew
    with wall time rather than with questions, and held the GIL while the event loop had replies to
    read (``benchmarks/cli_profile.py``).
    """

    def __init__(self, console=None, min_interval: float = 0.5) -> None:
        self.console = console
        self.min_interval = min_interval
        self.redraws = 0

    def start(self, cells: list[Cell]) -> None:
        super().start(cells)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[err]}"), TextColumn("{task.fields[rate]}"),
                            TimeRemainingColumn(), console=self.console or Console(stderr=True), auto_refresh=False)
        self.t0 = self.last = time.perf_counter()
        from rich.markup import escape

        self.ids = {id(c): self.bar.add_task(escape(c.label), total=c.total, err="", rate="") for c in cells}
        self.shown: dict[int, int] = {id(c): 0 for c in cells}
        self.bar.start()  # draws the first frame

    def advance(self, cell: Cell, rec: SampleRecord) -> None:
        super().advance(cell, rec)
        now = time.perf_counter()
        if now - self.last >= self.min_interval or self.n == self.total:
            self.last = now
            self.redraw()

    def redraw(self) -> None:
        """Bring every cell that moved up to date and draw the table once."""
        self._sync()
        self.bar.refresh()
        self.redraws += 1

    def _sync(self) -> None:
        for c in self.cells:
            if self.shown[id(c)] != c.done:
                rate, _ = rate_eta(c, self.t0)
                self.bar.update(self.ids[id(c)], completed=c.done, err=f"{c.errors} err" if c.errors else "",
                                rate=f"{rate:.2f} q/s" if rate else "")
                self.shown[id(c)] = c.done

    def stopped(self, cell: Cell, message: str) -> None:
        self.bar.console.print(message, markup=False, highlight=False)

    def close(self) -> None:
        self._sync()
        self.bar.stop()  # draws the last frame


def pick_reporter(progress: Callable[[str], None] = log, *, per_question: bool = False) -> Reporter:
    """rich bars on a terminal; plain lines otherwise (logs, CI)."""
    if progress is log and sys.stderr.isatty():
        return RichCells()
    return QuestionLog(progress) if per_question else CellLog(progress)
