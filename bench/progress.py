"""Progress output of ``bench run``: rich bars on a terminal, plain log lines otherwise.

Two bars on a terminal — the suite (units done / total, with ETA) and the current unit (epoch and
last loss) — with messages printed above them. Without a TTY (a log file, SLURM, CI), or with
``BENCH_PLAIN=1``, every message and every epoch is one plain line, flushed at once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any


class Progress:
    """Plain lines (also the interface the executor talks to)."""

    def __init__(self, quiet: bool = False, prefix: str = "",
                 sink: Callable[[str], None] | None = None):
        self.quiet = quiet
        self.prefix = prefix
        self.sink = sink or (lambda line: print(line, flush=True))

    def say(self, msg: str) -> None:
        """A message line."""
        if not self.quiet:
            self.sink(f"{self.prefix}{msg}")

    def set_total(self, total: int) -> None:
        """The number of units (stages + trials) this run expects to do."""

    def advance(self, n: int = 1) -> None:
        """``n`` units are done (or failed)."""

    def unit(self, desc: str, epochs: int) -> None:
        """A new unit starts: ``epochs`` epochs in all."""

    def epoch(self, desc: str, done: int, total: int, loss: float) -> None:
        """An epoch of the current unit ended with ``loss``."""
        self.say(f"  {desc}: epoch {done}/{total} loss {loss:.4f}")

    def close(self) -> None:
        """Remove the bars."""


class RichProgress(Progress):
    """Rich bars: the suite with ETA, the current unit with epoch and loss."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bars

        self.console = Console()
        self.bars = Bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                         TextColumn("{task.fields[info]}"), console=self.console,
                         transient=True)
        self.bars.start()
        self.suite = self.bars.add_task("suite", total=None, info="")
        self.current: Any = None

    def say(self, msg: str) -> None:
        self.bars.console.print(msg, markup=False, highlight=False)

    def set_total(self, total: int) -> None:
        self.bars.update(self.suite, total=total)

    def advance(self, n: int = 1) -> None:
        self.bars.advance(self.suite, n)

    def unit(self, desc: str, epochs: int) -> None:
        if self.current is not None:
            self.bars.remove_task(self.current)
        self.current = self.bars.add_task(desc[:48], total=max(epochs, 1), info="")

    def epoch(self, desc: str, done: int, total: int, loss: float) -> None:
        if self.current is None:
            self.unit(desc, total)
        self.bars.update(self.current, completed=done, total=total, info=f"loss {loss:.4f}")

    def close(self) -> None:
        self.bars.stop()


def make_progress(quiet: bool = False, prefix: str = "") -> Progress:
    """Rich bars when stdout is a terminal (and ``BENCH_PLAIN`` is unset), else plain lines."""
    if quiet or prefix or os.environ.get("BENCH_PLAIN") or not sys.stdout.isatty():
        return Progress(quiet=quiet, prefix=prefix)
    try:
        return RichProgress()
    except Exception:  # a terminal rich cannot drive
        return Progress()
