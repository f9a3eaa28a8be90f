"""Work claims: a unit's MLflow run, created and ended under its lease (:mod:`.leases`).

Several ``bench run`` processes (``--workers``, ``--gpus``, SLURM tasks, two terminals, several
machines) may work on one suite. To claim a unit, a worker takes its lease, checks that no run
of the unit is FINISHED, creates its RUNNING run (tagged with its owner and the lease's store and
generation) and records the run on the lease. A :class:`Heartbeat` thread renews the leases it
holds; a lease it fails to renew is lost, and the unit's work stops at its next epoch. A run is
ended FINISHED only inside :meth:`Leases.fenced`, so a process that was paused past the TTL and
taken over never finishes its unit a second time.

Runs left RUNNING by a dead claimant (SIGKILL, power loss, a lease taken over) are marked KILLED
by whoever notices them first, after voiding the dead lease, and their work is done again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bench.errors import BenchError
from bench.execute.leases import DONE, HELD, Lease, LeaseLost, Leases, owner_gone, shown_uri
from bench.track import FINISHED, KILLED, RUNNING, RunRecord, Tag, Tracker


@dataclass(frozen=True)
class ClaimRequest:
    """One unit to claim: its run's kind, content key, name, tags and parent run."""

    kind: str
    key: str
    name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    parent: str | None = None


@dataclass(frozen=True)
class Claim:
    """A claimed unit: the run its result goes to and the lease that lets it be written."""

    run_id: str
    lease: Lease


def _lease_tag(rec: RunRecord) -> tuple[str, int]:
    """(claims store id, generation) of a run; ("", 0) for a run made without a lease."""
    store, _, gen = rec.tags.get(Tag.LEASE, "").partition(":")
    return store, int(gen) if gen.isdigit() else 0


class Claims:
    """Claims of one owner (an executor) on one tracker, under one lease table."""

    def __init__(self, tracker: Tracker, leases: Leases, owner: str,
                 tags: Mapping[str, str] | None = None):
        self.tracker = tracker
        self.leases = leases
        self.owner = owner
        self.tags = dict(tags or {})  # put on every claimed run (e.g. its numerics)

    def claim_many(self, units: Sequence[ClaimRequest]) -> list[Claim | None]:
        """Claim several units at once (a HeadBank's trials): one transaction takes their
        leases. Returns a claim, or None where the unit is held or finished, per unit."""
        got = self.leases.acquire([u.key for u in units], self.owner)
        out: list[Claim | None] = []
        for u in units:
            if u.key not in got:
                out.append(None)
                continue
            lease, previous = got[u.key]
            runs = self.tracker.runs_for_key(u.key)
            if previous is not None and previous.state == HELD and previous.run_id:
                for r in runs:
                    if r.run_id == previous.run_id and r.status == RUNNING:
                        self.tracker.fail(r.run_id, f"taken over: its claimant ({previous.owner})"
                                          f" stopped renewing its lease (generation "
                                          f"{previous.generation})", KILLED)
            if any(r.status == FINISHED for r in runs):  # finished since the caller looked
                self.leases.release(lease, DONE)
                out.append(None)
                continue
            tags = {**u.tags, **self.tags, Tag.OWNER: self.owner,
                    Tag.LEASE: f"{self.leases.id}:{lease.generation}",
                    Tag.CLAIMS: shown_uri(self.leases.uri)}
            run_id = self.tracker.start(u.kind, u.key, u.name, tags=tags, parent=u.parent)
            if not self.leases.attach(lease, run_id):  # paused while claiming, and taken over
                self.tracker.fail(run_id, "lost its lease while claiming the unit", KILLED)
                out.append(None)
                continue
            out.append(Claim(run_id, lease))
        return out

    def claim(self, kind: str, key: str, name: str, tags: Mapping[str, str] | None = None,
              parent: str | None = None) -> Claim | None:
        """Claim one unit (see :meth:`claim_many`)."""
        return self.claim_many([ClaimRequest(kind, key, name, tags or {}, parent)])[0]

    def foreign(self, records: Iterable[RunRecord]) -> list[RunRecord]:
        """RUNNING runs claimed under another claims store by a process not known dead."""
        return [r for r in records if r.status == RUNNING and r.kind != "cell"
                and _lease_tag(r)[0] not in ("", self.leases.id)
                and not owner_gone(r.tags.get(Tag.OWNER, ""))]

    def check_shared(self, records: Iterable[RunRecord]) -> None:
        """Refuse to run beside runners that use another claims store: their leases are
        invisible here, so a unit could run twice."""
        others = self.foreign(records)
        if others:
            r = others[0]
            raise BenchError(
                f"{len(others)} unit(s) of this suite are held by {r.tags.get(Tag.OWNER)} under "
                f"the claims store {r.tags.get(Tag.CLAIMS, '?')}, and this run uses "
                f"{shown_uri(self.leases.uri)}: every runner of one suite must share one claims "
                "store (pass the same --claims-uri or BENCH_CLAIMS_URI; if those runners are "
                "gone, run once with their store to close their runs)")

    def close_dead(self, records: Iterable[RunRecord]) -> int:
        """Mark KILLED the RUNNING runs whose claimant is dead (its lease voided first, so it
        can never finish them); return how many. ``records`` may be stale: a run is killed only
        when it is still RUNNING after its lease was found gone (a run FINISHED since was
        finished under its lease, before the lease was marked done)."""
        running = [r for r in records if r.status == RUNNING and r.kind != "cell"]
        if not running:
            return 0
        rows = self.leases.rows(r.key for r in running)
        n = 0
        for r in running:
            store, gen = _lease_tag(r)
            if store not in ("", self.leases.id):
                if not owner_gone(r.tags.get(Tag.OWNER, "")):
                    continue  # another store's claim (refused by check_shared)
            else:
                row = rows.get(r.key)
                if row is not None and row.generation == gen and row.state == HELD \
                        and (self.leases.live(row) or not self.leases.revoke(row)):
                    continue  # alive, or renewed since it was read
            if self.tracker.status(r.run_id) != RUNNING:  # it ended since it was read
                continue
            owner = r.tags.get(Tag.OWNER, "an earlier bench")
            self.tracker.fail(r.run_id, f"interrupted: its process ({owner}) ended or stopped "
                                        "renewing its lease while the run was RUNNING", KILLED)
            n += 1
        return n


class Heartbeat:
    """A daemon thread that renews the leases an executor holds and notes those it lost."""

    def __init__(self, leases: Leases, interval: float | None = None):
        self.leases = leases
        self.interval = leases.heartbeat if interval is None else interval
        self._held: dict[str, Lease] = {}
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def hold(self, run_id: str, lease: Lease) -> None:
        """Renew ``lease`` (of run ``run_id``) until :meth:`release`."""
        with self._lock:
            self._held[run_id] = lease

    def release(self, run_id: str) -> None:
        """Stop renewing the lease of ``run_id``."""
        with self._lock:
            self._held.pop(run_id, None)
            self._lost.discard(run_id)

    def held(self) -> list[str]:
        """The run ids whose leases are held."""
        with self._lock:
            return sorted(self._held)

    def check(self, run_id: str) -> None:
        """Raise :class:`LeaseLost` when a renewal found the lease of ``run_id`` taken."""
        with self._lock:
            lease = self._held.get(run_id) if run_id in self._lost else None
        if lease is not None:
            raise LeaseLost(lease, self.leases.rows([lease.key]).get(lease.key))

    def beat(self) -> None:
        """Renew every held lease once."""
        with self._lock:
            held = dict(self._held)
        lost = set(self.leases.renew(held.values()))
        with self._lock:
            self._lost |= {r for r, lease in held.items() if lease in lost}

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:  # a transient store error; the next beat retries
                pass
