"""Atomic work claims in an MLflow store, kept alive by heartbeats.

Several ``bench run`` processes (``--workers``, ``--gpus``, SLURM tasks, or simply two terminals)
may work on one suite. Each unit of work (a stage, a cell's lr search, a trial) is claimed by
creating its MLflow run RUNNING with the unit's content key (``bench.key``), an owner
(``host:pid:token``) and a heartbeat (``bench.heartbeat``, Unix seconds). The claimant then reads
every run of that key back:

* a FINISHED run exists → the work is done: the new run is deleted;
* otherwise, among the live RUNNING runs, the winner is a confirmed claim if there is one, else the
  oldest (start time, then run id). Every contender reads the same rows and so agrees on the
  winner; losers delete their run before doing any work, the winner tags its run confirmed.

A claim is live while its heartbeat is younger than the TTL (``BENCH_CLAIM_TTL`` seconds, default
180; a background thread beats every ``BENCH_HEARTBEAT_S`` = 30 s). On the claimant's own host a
claim whose process no longer exists is dead at once, so a SIGKILLed run is taken over by the next
``bench run`` without waiting. Dead claims are marked KILLED by whoever notices them, and their
work is done again. The scheme assumes the machines' clocks agree to well under the TTL (NTP).
"""

from __future__ import annotations

import os
import platform
import threading
import time
import uuid
from collections.abc import Iterable, Mapping

from bench.track import FINISHED, KILLED, RUNNING, RunRecord, Tracker

OWNER_TAG = "bench.owner"
HEARTBEAT_TAG = "bench.heartbeat"
CONFIRMED_TAG = "bench.claim"

_ACTIVE: set[str] = set()  # owner ids of the executors alive in this process


def heartbeat_seconds() -> float:
    """Seconds between heartbeats (``BENCH_HEARTBEAT_S``, default 30)."""
    return float(os.environ.get("BENCH_HEARTBEAT_S", "30"))


def claim_ttl() -> float:
    """Seconds without a heartbeat after which a claim is dead (``BENCH_CLAIM_TTL``, default 180)."""
    return float(os.environ.get("BENCH_CLAIM_TTL", "180"))


def new_owner() -> str:
    """A fresh owner id ``host:pid:token`` for one executor, registered as alive."""
    owner = f"{platform.node()}:{os.getpid()}:{uuid.uuid4().hex[:10]}"
    _ACTIVE.add(owner)
    return owner


def retire_owner(owner: str) -> None:
    """The executor ``owner`` has ended: its leftover RUNNING claims are dead from now on."""
    _ACTIVE.discard(owner)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_alive(rec: RunRecord, now: float | None = None) -> bool:
    """Whether a RUNNING run is held by a live claimant.

    Dead: no owner tag (a run left by a bench without claims), a heartbeat older than the TTL, an
    owner on this host whose process is gone, or an owner in this process that has ended.
    """
    if rec.status != RUNNING:
        return False
    owner = rec.tags.get(OWNER_TAG)
    if not owner:
        return False
    now = time.time() if now is None else now
    beat = float(rec.tags.get(HEARTBEAT_TAG, rec.start_time / 1000))
    if now - beat > claim_ttl():
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, _token = rest.partition(":")
    if host == platform.node() and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            return owner in _ACTIVE
        return _pid_alive(pid)
    return True


def close_dead(tracker: Tracker, records: Iterable[RunRecord]) -> int:
    """Mark the dead RUNNING claims among ``records`` KILLED; return how many."""
    n = 0
    now = time.time()
    for r in records:
        if r.status == RUNNING and r.kind != "cell" and not claim_alive(r, now):
            owner = r.tags.get(OWNER_TAG, "an earlier bench")
            tracker.fail(r.run_id, f"interrupted: its process ({owner}) ended or stopped "
                                   "sending heartbeats while the run was RUNNING", KILLED)
            n += 1
    return n


def _winner(records: list[RunRecord], mine: str) -> RunRecord | None:
    now = time.time()
    live = [r for r in records if r.status == RUNNING and (r.run_id == mine or claim_alive(r, now))]
    if not live:
        return None
    return min(live, key=lambda r: (r.tags.get(CONFIRMED_TAG) != "confirmed", r.start_time,
                                    r.run_id))


def claim(tracker: Tracker, owner: str, kind: str, key: str, name: str,
          tags: Mapping[str, str] | None = None, parent: str | None = None) -> str | None:
    """Claim the unit ``key``: the id of its new RUNNING run, or None when another process holds
    it or it is already FINISHED (then nothing is left behind)."""
    now = f"{time.time():.3f}"
    run_id = tracker.start(kind, key, name, tags={**(tags or {}), OWNER_TAG: owner,
                                                  HEARTBEAT_TAG: now}, parent=parent)
    rivals = tracker.runs_for_key(key)
    won = not any(r.status == FINISHED for r in rivals)
    if won:
        winner = _winner(rivals, run_id)
        won = winner is not None and winner.run_id == run_id
    if not won:
        tracker.finish(run_id, KILLED)
        tracker.delete_run(run_id)
        return None
    tracker.set_tags(run_id, {CONFIRMED_TAG: "confirmed"})
    return run_id


class Heartbeat:
    """A daemon thread that stamps ``bench.heartbeat`` on the runs an executor holds."""

    def __init__(self, tracker: Tracker, interval: float | None = None):
        self.tracker = tracker
        self.interval = heartbeat_seconds() if interval is None else interval
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def hold(self, run_id: str) -> None:
        """Keep ``run_id`` alive until :meth:`release`."""
        with self._lock:
            self._held.add(run_id)

    def release(self, run_id: str) -> None:
        """Stop beating for ``run_id``."""
        with self._lock:
            self._held.discard(run_id)

    def held(self) -> list[str]:
        """The run ids currently held."""
        with self._lock:
            return sorted(self._held)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for run_id in self.held():
                try:
                    self.tracker.set_tags(run_id, {HEARTBEAT_TAG: f"{time.time():.3f}"})
                except Exception:  # a transient store error; the next beat retries
                    pass
