"""Atomic work claims in an MLflow store, kept alive by heartbeats.

Several ``bench run`` processes (``--workers``, ``--gpus``, SLURM tasks, or simply two terminals)
may work on one suite. Each unit of work (a stage, a cell's lr search, a trial) is claimed by
creating its MLflow run RUNNING with the unit's content key (``bench.key``), an owner
(``host:pid:token``) and a heartbeat (``bench.heartbeat``, Unix seconds). MLflow has no
compare-and-set, so exclusivity comes from one of two protocols:

* **SQLite store** (one file, possibly on a shared file system): the claimant takes an exclusive
  ``fcntl`` lock next to the database, reads the key's runs, and creates its run only if none is
  FINISHED or held by a live claimant. Claims are serialised, so exactly one process wins, at no
  waiting cost.
* **Server store** (``http(s)://``, ``postgresql://``, …): the claimant creates its run with a start
  time ``s`` taken just before the request, gives up at once if the request took longer than the
  fence ``F`` (``BENCH_CLAIM_FENCE_S``, default 2 s), waits until ``s + F``, then reads the key's
  runs. A FINISHED run means the work is done; otherwise the oldest live RUNNING run (start time,
  then run id) wins and the others delete theirs before doing any work. The fence makes "oldest"
  safe: a rival with an older start time that was not yet visible would have needed more than
  ``F`` to be written, so it gives itself up. Every contender reads the same rows and agrees.
  :func:`claim_many` claims several units (a HeadBank's trials) with one wait.

A claim is live while its heartbeat is younger than the TTL (``BENCH_CLAIM_TTL`` seconds, default
180; a background thread beats every ``BENCH_HEARTBEAT_S`` = 30 s). On the claimant's own host a
claim whose process no longer exists is dead at once, so a SIGKILLed run is taken over by the next
``bench run`` without waiting. Dead claims are marked KILLED by whoever notices them, and their
work is done again. The server protocol assumes the machines' clocks agree to well under the fence
(NTP).
"""

from __future__ import annotations

import os
import platform
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bench.track import (
    FINISHED,
    KILLED,
    RUNNING,
    RunRecord,
    Tag,
    Tracker,
    environment_tags,
    store_lock,
)

OWNER_TAG = Tag.OWNER
HEARTBEAT_TAG = Tag.HEARTBEAT

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


def claim_fence() -> float:
    """Seconds a server-store claim waits before reading its rivals (``BENCH_CLAIM_FENCE_S``,
    default 2)."""
    return float(os.environ.get("BENCH_CLAIM_FENCE_S", "2"))


def _held(records: Iterable[RunRecord]) -> bool:
    """Whether the work is done or held: a FINISHED run or a live RUNNING claim."""
    now = time.time()
    return any(r.status == FINISHED or claim_alive(r, now) for r in records)


@dataclass(frozen=True)
class ClaimRequest:
    """One unit to claim: its run's kind, content key, name, tags and parent run."""

    kind: str
    key: str
    name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    parent: str | None = None


def claim(tracker: Tracker, owner: str, kind: str, key: str, name: str,
          tags: Mapping[str, str] | None = None, parent: str | None = None) -> str | None:
    """Claim the unit ``key``: the id of its new RUNNING run, or None when another process holds
    it or it is already FINISHED (then nothing is left behind)."""
    return claim_many(tracker, owner, [ClaimRequest(kind, key, name, tags or {}, parent)])[0]


def claim_many(tracker: Tracker, owner: str, units: Sequence[ClaimRequest]) -> list[str | None]:
    """Claim several units at once (a HeadBank's trials): one lock, or one fence wait for all.
    Returns a run id or None per unit, in order."""
    lock = store_lock(tracker.uri)
    if lock is None:
        return _fenced_claims(tracker, owner, units)
    out: list[str | None] = []
    with lock:
        for u in units:
            if _held(tracker.runs_for_key(u.key)):
                out.append(None)
                continue
            tags = {**u.tags, OWNER_TAG: owner, HEARTBEAT_TAG: f"{time.time():.3f}"}
            out.append(tracker.start(u.kind, u.key, u.name, tags=tags, parent=u.parent))
    return out


def _fenced_claims(tracker: Tracker, owner: str, units: Sequence[ClaimRequest]) -> list[str | None]:
    fence = claim_fence()
    environment_tags()  # computed once (git, torch versions) before any write is timed
    made: dict[int, tuple[str, int]] = {}  # unit index -> (run id, start ms)
    lost: list[str] = []
    for i, u in enumerate(units):
        if _held(tracker.runs_for_key(u.key)):  # the common case costs no run and no wait
            continue
        began = time.time()
        start_ms = int(began * 1000)
        tags = {**u.tags, OWNER_TAG: owner, HEARTBEAT_TAG: f"{began:.3f}"}
        run_id = tracker.start(u.kind, u.key, u.name, tags=tags, parent=u.parent,
                               start_time=start_ms)
        if time.time() - began > fence:  # a slower write could be ordered wrongly: give up
            lost.append(run_id)
        else:
            made[i] = (run_id, start_ms)
    if made:
        time.sleep(max(0.0, max(s for _, s in made.values()) / 1000 + fence - time.time()))
    out: list[str | None] = [None] * len(units)
    for i, (run_id, _) in made.items():
        rivals = tracker.runs_for_key(units[i].key)
        if any(r.status == FINISHED for r in rivals):
            lost.append(run_id)
            continue
        now = time.time()
        live = [r for r in rivals if r.status == RUNNING
                and (r.run_id == run_id or claim_alive(r, now))]
        if min(live, key=lambda r: (r.start_time, r.run_id)).run_id == run_id:
            out[i] = run_id
        else:
            lost.append(run_id)
    for run_id in lost:
        tracker.finish(run_id, KILLED)
        tracker.delete_run(run_id)
    return out


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
