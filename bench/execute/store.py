"""The suite's runs as a worker sees them, re-read incrementally (no torch)."""

from __future__ import annotations

import time

from bench.track import RUNNING, RunRecord, Tracker


class StoreView:
    """The suite's runs, re-read incrementally: after a full read, each refresh asks only for
    the RUNNING runs and those that ended since the previous refresh (minus a margin for clock
    differences between machines); a full read every ``full_every`` seconds catches runs deleted
    by hand. On a store of 800 runs a full read takes seconds, an incremental one milliseconds.

    An ended run is never written again (a unit's result is written once, under its lease), so
    the runs already read in an ended state are left out of the margin's search: a refresh
    reads only what changed, also when every run ended within the margin (short units).
    """

    def __init__(self, tracker: Tracker, full_every: float = 600.0, margin_ms: int = 120_000):
        self.tracker = tracker
        self.full_every = full_every
        self.margin_ms = margin_ms
        self._records: dict[str, RunRecord] = {}
        self._last_ms: int | None = None
        self._last_full = 0.0

    def refresh(self, full: bool = False) -> list[RunRecord]:
        """The runs, oldest first."""
        now = time.time()
        if full or self._last_ms is None or now - self._last_full > self.full_every:
            self._records = {r.run_id: r for r in self.tracker.runs()}
            self._last_full = now
        else:
            since = self._last_ms - self.margin_ms
            running = self.tracker.runs(status=RUNNING)
            known = {k for k, r in self._records.items()  # ended, and read so
                     if r.status != RUNNING and (r.end_time or 0) >= since}
            ended = self.tracker.runs(ended_since=since, exclude=known)
            self._records = {k: r for k, r in self._records.items() if r.status != RUNNING}
            for r in running + ended:
                self._records[r.run_id] = r
        self._last_ms = int(now * 1000)
        return sorted(self._records.values(), key=lambda r: (r.start_time, r.run_id))
