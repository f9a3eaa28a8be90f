"""Per-epoch losses of the runs a worker holds, written in batches (no torch)."""

from __future__ import annotations

import logging
import time

from bench.track import Tracker

log = logging.getLogger("bench")


class Curves:
    """The loss of each epoch of the held runs, written to the store at most every ``every``
    seconds per run, and all of it when the run ends (:meth:`flush`): a live curve where an
    epoch takes minutes, one store write per unit where epochs take milliseconds (a store write
    costs tens of milliseconds; a tracking server's, more)."""

    def __init__(self, tracker: Tracker, every: float = 10.0):
        self.tracker = tracker
        self.every = every
        self._points: dict[str, list[tuple[str, float, int]]] = {}
        self._since: dict[str, float] = {}  # when each run's oldest unwritten point came

    def add(self, run_id: str, name: str, value: float, step: int) -> None:
        """One epoch's value; written now when the run's oldest unwritten one is ``every``
        seconds old."""
        now = time.monotonic()
        self._points.setdefault(run_id, []).append((name, value, step))
        since = self._since.setdefault(run_id, now)
        if now - since >= self.every:
            self.flush(run_id)

    def flush(self, run_id: str) -> None:
        """Write the run's unwritten values. A curve is for people to read: a store that
        refuses it is a warning, never a failed run, and the run still ends under its lease."""
        points = self._points.pop(run_id, [])
        self._since.pop(run_id, None)
        if not points:
            return
        try:
            self.tracker.log_points(run_id, points)
        except Exception as exc:  # the next write of the run's state meets it, if it lasts
            log.warning("the loss curve of run %s was not written: %s", run_id,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
