"""Leases with fencing: which process may write a unit's result, in a table of their own.

Every claimable unit (a stage, a cell's lr search, a trial) has at most one row in
``bench_leases``: its content key, the holder (``host:pid:token``), a *generation* that grows by
one with every new holder, the holder's last heartbeat in the **database's** clock, a state
(``held``, ``done`` or ``free``) and the MLflow run the holder writes to.

* **Take** (:meth:`Leases.acquire`): an atomic insert of a new row, or — with the row locked — a
  take-over of a row that is not held, or held by a holder that is dead: its heartbeat is older
  than the TTL by the database's clock, or it is a process of this host that no longer exists.
  A take-over bumps the generation, so the previous holder's lease is void from that moment.
* **Renew** (:meth:`Leases.renew`): a conditional update on (key, holder, generation); a holder
  whose renewal matches no row has lost its lease and stops working on the unit.
* **Fence** (:meth:`Leases.fenced`): the writes that end a unit (its encoder file put in place,
  its run set FINISHED) happen with the lease row locked and only after checking that the
  (holder, generation) is still the writer's; the row is then marked ``done``. A writer that lost
  its lease gets :class:`LeaseLost`, discards its result and says so. A paused process therefore
  never produces a second FINISHED run or overwrites an encoder, whatever the clocks say.

The store is SQLite (default: ``leases.db`` next to ``mlflow.db``; one machine, or a file system
with working locks) or PostgreSQL (``--claims-uri postgresql://…`` / ``BENCH_CLAIMS_URI``; many
machines). The TTL (``BENCH_CLAIM_TTL``, default 180 s) must exceed 3 × the heartbeat interval
(``BENCH_HEARTBEAT_S``, default 30 s), so one slow or lost beat never loses a lease.
"""

from __future__ import annotations

import contextlib
import os
import platform
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.procs import pid_alive

HELD, DONE, FREE = "held", "done", "free"
_ACTIVE: set[str] = set()  # owners (executors) alive in this process

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bench_leases (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
    "generation BIGINT NOT NULL, heartbeat DOUBLE PRECISION NOT NULL, state TEXT NOT NULL, "
    "run_id TEXT)",
    "CREATE TABLE IF NOT EXISTS bench_lease_store (one INTEGER PRIMARY KEY, id TEXT NOT NULL)",
)
_NOW = {  # seconds since the epoch by the database's clock
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
    "postgresql": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)",
}


def heartbeat_seconds() -> float:
    """Seconds between heartbeats (``BENCH_HEARTBEAT_S``, default 30)."""
    return _seconds("BENCH_HEARTBEAT_S", "30")


def claim_ttl() -> float:
    """Seconds without a heartbeat after which a lease is dead (``BENCH_CLAIM_TTL``, default 180)."""
    return _seconds("BENCH_CLAIM_TTL", "180")


def _seconds(var: str, default: str) -> float:
    text = os.environ.get(var, default)
    try:
        value = float(text)
    except ValueError:
        raise BenchError(f"{var}={text!r} is not a number of seconds") from None
    if not value > 0:
        raise BenchError(f"{var}={text!r} must be a positive number of seconds")
    return value


def check_timing(ttl: float, heartbeat: float) -> None:
    """A TTL of at most 3 heartbeats would let a live holder lose its lease: refused."""
    if ttl <= 3 * heartbeat:
        raise BenchError(f"BENCH_CLAIM_TTL ({ttl:g} s) must exceed 3 × BENCH_HEARTBEAT_S "
                         f"({heartbeat:g} s) = {3 * heartbeat:g} s, or a live runner loses its "
                         "units to another; raise BENCH_CLAIM_TTL or lower BENCH_HEARTBEAT_S")


def new_owner() -> str:
    """A fresh owner id ``host:pid:token`` for one executor, registered as alive."""
    owner = f"{platform.node()}:{os.getpid()}:{uuid.uuid4().hex[:10]}"
    _ACTIVE.add(owner)
    return owner


def retire_owner(owner: str) -> None:
    """The executor ``owner`` has ended: its leases are dead from now on."""
    _ACTIVE.discard(owner)


def owner_gone(owner: str) -> bool:
    """Whether ``owner`` is provably dead: a process of this host that no longer exists, or an
    executor of this process that has ended. Other hosts' owners are judged by their heartbeat."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != platform.node() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner not in _ACTIVE
    return not pid_alive(pid)


def claims_uri_for(given: str | None, tracking_uri: str, output: Path) -> str:
    """The claims store: ``given`` (``--claims-uri``), else ``BENCH_CLAIMS_URI``, else
    ``leases.db`` next to a SQLite ``mlflow.db``, else in the output folder."""
    if given or os.environ.get("BENCH_CLAIMS_URI"):
        return given or os.environ["BENCH_CLAIMS_URI"]
    folder = (Path(tracking_uri.removeprefix("sqlite:///")).parent
              if tracking_uri.startswith("sqlite:///") else output)
    return f"sqlite:///{(folder / 'leases.db').resolve()}"


def shown_uri(uri: str) -> str:
    """``uri`` without its password (for messages and tags)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(uri).render_as_string(hide_password=True)
    except Exception:
        return uri


@dataclass(frozen=True)
class Lease:
    """The right of ``owner`` to write the result of unit ``key`` (while ``generation`` holds)."""

    key: str
    owner: str
    generation: int


@dataclass(frozen=True)
class LeaseRow:
    """A row of the table; ``age``: seconds since its last heartbeat, by the database's clock."""

    key: str
    owner: str
    generation: int
    state: str
    run_id: str | None
    age: float


class LeaseLost(Exception):
    """The writer's lease was taken over (or released) before it could end its unit."""

    def __init__(self, lease: Lease | None, row: LeaseRow | None):
        holder = f"{row.owner} (generation {row.generation}, {row.state})" if row else "nobody"
        mine = f" (generation {lease.generation})" if lease is not None else ""
        super().__init__(f"lost its lease{mine} to {holder}")
        self.lease = lease


class Leases:
    """The lease table of one claims store (see the module docstring)."""

    def __init__(self, uri: str, ttl: float | None = None, heartbeat: float | None = None):
        self.ttl = claim_ttl() if ttl is None else ttl
        self.heartbeat = heartbeat_seconds() if heartbeat is None else heartbeat
        check_timing(self.ttl, self.heartbeat)
        self.uri = uri
        self.engine = _engine(uri)
        self.dialect = self.engine.dialect.name
        self._now = _NOW[self.dialect]
        self._lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
        self._select = (f"SELECT key, owner, generation, state, run_id, {self._now} - heartbeat "
                        "FROM bench_leases")
        self.id = self._open()

    def _open(self) -> str:
        from sqlalchemy import text

        try:
            with self.engine.begin() as conn:
                for ddl in _SCHEMA:
                    conn.exec_driver_sql(ddl)
                conn.execute(text("INSERT INTO bench_lease_store (one, id) VALUES (1, :i) "
                                  "ON CONFLICT DO NOTHING"), {"i": uuid.uuid4().hex})
                return str(conn.execute(text("SELECT id FROM bench_lease_store")).scalar())
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BenchError(f"claims store {shown_uri(self.uri)}: {first} (set --claims-uri or "
                             "BENCH_CLAIMS_URI to a reachable sqlite:/// or postgresql:// "
                             "database)") from exc

    def close(self) -> None:
        """Close the store's connections."""
        self.engine.dispose()

    # ------------------------------------------------------------------ reading
    def rows(self, keys: Iterable[str] | None = None) -> dict[str, LeaseRow]:
        """The rows of ``keys`` (all rows when None), with their age by the database clock."""
        from sqlalchemy import bindparam, text

        sql = self._select
        with self.engine.connect().execution_options(bench_read=True) as conn:
            if keys is None:
                found = conn.execute(text(sql))
            else:
                wanted = sorted(set(keys))
                if not wanted:
                    return {}
                found = conn.execute(text(sql + " WHERE key IN :keys").bindparams(
                    bindparam("keys", expanding=True)), {"keys": wanted})
            return {r[0]: _as_row(r) for r in found}

    def live_keys(self) -> set[str]:
        """Keys whose lease a live holder holds."""
        return {k for k, row in self.rows().items() if self.live(row)}

    def live(self, row: LeaseRow | None) -> bool:
        """Whether ``row`` is held by a live holder."""
        return (row is not None and row.state == HELD and row.age <= self.ttl
                and not owner_gone(row.owner))

    def _row(self, conn: Any, key: str) -> LeaseRow | None:
        from sqlalchemy import text

        r = conn.execute(text(f"{self._select} WHERE key = :k{self._lock}"), {"k": key}).first()
        return None if r is None else _as_row(r)

    # ------------------------------------------------------------------ writing
    def acquire(self, keys: Sequence[str], owner: str
                ) -> dict[str, tuple[Lease, LeaseRow | None]]:
        """Take the leases of ``keys`` that nobody live holds, in one transaction. Returns, per
        key taken, the new lease and the row it replaced (None for a new row)."""
        from sqlalchemy import text

        got: dict[str, tuple[Lease, LeaseRow | None]] = {}
        with self.engine.begin() as conn:
            for key in keys:
                made = conn.execute(text(
                    "INSERT INTO bench_leases (key, owner, generation, heartbeat, state) VALUES "
                    f"(:k, :o, 1, {self._now}, '{HELD}') ON CONFLICT DO NOTHING"),
                    {"k": key, "o": owner}).rowcount
                if made == 1:
                    got[key] = (Lease(key, owner, 1), None)
                    continue
                row = self._row(conn, key)  # locked until the transaction ends
                if row is None or self.live(row):
                    continue
                conn.execute(text(
                    f"UPDATE bench_leases SET owner = :o, generation = :g, heartbeat = "
                    f"{self._now}, state = '{HELD}', run_id = NULL WHERE key = :k"),
                    {"o": owner, "g": row.generation + 1, "k": key})
                got[key] = (Lease(key, owner, row.generation + 1), row)
        return got

    def attach(self, lease: Lease, run_id: str) -> bool:
        """Record the MLflow run the holder writes to; False when the lease was lost."""
        return self._update(lease, "run_id = :r", {"r": run_id})

    def renew(self, leases: Iterable[Lease]) -> list[Lease]:
        """Stamp the holder's heartbeat on ``leases``; return those it no longer holds."""
        with self.engine.begin() as conn:  # one transaction for all of them
            return [lease for lease in leases
                    if not self._update(lease, f"heartbeat = {self._now}", conn=conn)]

    def release(self, lease: Lease, state: str = FREE) -> bool:
        """End a lease (``free``: the unit is to be done again; ``done``: it is finished).
        False when it was no longer the holder's."""
        return self._update(lease, "state = :s", {"s": state})

    def revoke(self, row: LeaseRow) -> bool:
        """Void a dead holder's lease (its generation bumped, the row freed) so that it can
        never end its unit; False when the row changed since it was read."""
        from sqlalchemy import text

        with self.engine.begin() as conn:
            now = self._row(conn, row.key)
            if now is None or now.generation != row.generation or now.state != HELD \
                    or self.live(now):
                return False
            conn.execute(text(f"UPDATE bench_leases SET generation = generation + 1, state = "
                              f"'{FREE}' WHERE key = :k"), {"k": row.key})
        return True

    @contextlib.contextmanager
    def fenced(self, lease: Lease) -> Iterator[None]:
        """Run the writes that end ``lease``'s unit with its row locked, only while the lease
        is the writer's; then mark it done. Raises :class:`LeaseLost` (nothing written)."""
        from sqlalchemy import text

        with self.engine.begin() as conn:
            row = self._row(conn, lease.key)
            if (row is None or row.owner != lease.owner or row.generation != lease.generation
                    or row.state != HELD):
                raise LeaseLost(lease, row)
            yield
            conn.execute(text(f"UPDATE bench_leases SET state = '{DONE}', heartbeat = "
                              f"{self._now} WHERE key = :k"), {"k": lease.key})

    def _update(self, lease: Lease, assignment: str, values: dict | None = None,
                conn: Any = None) -> bool:
        """Apply ``assignment`` to ``lease``'s row while it is the holder's (in ``conn``'s
        transaction, else in one of its own); whether it was."""
        from sqlalchemy import text

        if conn is None:
            with self.engine.begin() as own:
                return self._update(lease, assignment, values, own)
        n = conn.execute(text(
            f"UPDATE bench_leases SET {assignment} WHERE key = :k AND owner = :o AND "
            f"generation = :g AND state = '{HELD}'"),
            {"k": lease.key, "o": lease.owner, "g": lease.generation, **(values or {})}
        ).rowcount
        return n == 1


def _as_row(r: Any) -> LeaseRow:
    """A result row of ``_select`` as a :class:`LeaseRow`."""
    return LeaseRow(r[0], r[1], int(r[2]), r[3], r[4], float(r[5]))


def _engine(uri: str) -> Any:
    """A SQLAlchemy engine whose SQLite transactions take the write lock at BEGIN (reads, marked
    ``bench_read``, do not); PostgreSQL row locks come from ``SELECT … FOR UPDATE``."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url

    try:
        url = make_url(uri)
    except Exception:
        raise BenchError(f"claims store {uri!r} is not a database URI (use sqlite:///<file> or "
                         "postgresql://user@host/db in --claims-uri or BENCH_CLAIMS_URI)") from None
    backend = url.get_backend_name()
    if backend not in _NOW:
        raise BenchError(f"claims store {shown_uri(uri)}: {backend!r} is not supported (use "
                         "sqlite:///<file> or postgresql://… in --claims-uri or BENCH_CLAIMS_URI)")
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    if url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None  # transactions begin below, not in the driver

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        read = conn.get_execution_options().get("bench_read")
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

    return engine
