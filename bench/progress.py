"""Progress output of ``bench run``: rich bars on a terminal, plain log lines otherwise.

Two bars on a terminal — the suite (units started / total, with ETA) and the current unit (epoch
and last loss) — with messages printed above them. Without a TTY (a log file, SLURM, CI), or with
``BENCH_PLAIN=1``, every message and every epoch is one plain line, flushed at once; each unit's
line carries the ETA (``[23/33, eta 0:04:10] stage …``).

The ETA weighs units by their cost (:mod:`bench.plan.cost`: a stage of 20 epochs weighs far more
than a cached linear probe) and converts cost to seconds with the rate of the work finished so
far in this run, by any worker of it (:class:`Eta`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any


class Eta:
    """Seconds left = (seconds so far / cost finished so far) × cost left.

    ``total``: the cost of every unit this run set out to do; :meth:`update` is told the cost
    still left (units neither finished nor given up, by this or any other worker) when a unit
    starts. Until some cost has finished in this run, ``prior`` (seconds per unit of cost of
    the suite's units finished before, from their recorded durations) stands in; without it
    there is no estimate (``"?"``)."""

    def __init__(self, total: float, clock: Callable[[], float] = time.monotonic,
                 prior: float | None = None):
        self.total = float(total)
        self.clock = clock
        self.prior = prior
        self.t0 = clock()
        self.left = self.total
        self.seconds: float | None = None

    def update(self, left: float) -> str:
        """The cost still left now; returns :meth:`text`."""
        self.left = min(max(float(left), 0.0), self.total)
        done = self.total - self.left
        elapsed = self.clock() - self.t0
        if done > 0 and elapsed > 0:
            self.seconds = elapsed / done * self.left
        else:
            self.seconds = self.prior * self.left if self.prior else None
        return self.text()

    def text(self) -> str:
        """``h:mm:ss``, or ``?`` before anything finished."""
        if self.seconds is None:
            return "?"
        s = round(self.seconds)
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


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

    def eta(self, text: str) -> None:
        """The suite's ETA changed (shown on the bar; plain lines carry it in the unit label)."""

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
        )
        from rich.progress import Progress as Bars

        self.console = Console()
        self.bars = Bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TimeElapsedColumn(), TextColumn("{task.fields[eta]}"),
                         TextColumn("{task.fields[info]}"), console=self.console,
                         transient=True)
        self.bars.start()
        self.suite = self.bars.add_task("suite", total=None, info="", eta="")
        self.current: Any = None

    def say(self, msg: str) -> None:
        self.bars.console.print(msg, markup=False, highlight=False)

    def set_total(self, total: int) -> None:
        self.bars.update(self.suite, total=total)

    def advance(self, n: int = 1) -> None:
        self.bars.advance(self.suite, n)

    def eta(self, text: str) -> None:
        self.bars.update(self.suite, eta=f"eta {text}")

    def unit(self, desc: str, epochs: int) -> None:
        if self.current is not None:
            self.bars.remove_task(self.current)
        self.current = self.bars.add_task(desc[:48], total=max(epochs, 1), info="", eta="")

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
