"""Opening an MLflow store safely: a SQLite store is created whole under a lock, a server is
probed before use, and a locked, corrupt or half-migrated store is one clear message.

With :mod:`bench.track`, the only modules that import mlflow.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from bench.errors import BenchError

LOCKED = "database is locked"
CORRUPT = ("file is not a database", "database disk image is malformed")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, None for other stores."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def store_lock(uri: str) -> AbstractContextManager[None] | None:
    """An exclusive ``fcntl`` lock on a file next to a SQLite store, or None for other stores
    (and where ``fcntl`` does not exist). It serialises the store's creation and schema
    migration across the processes that share the database file."""
    db = sqlite_path(uri)
    if db is None:
        return None
    try:
        import fcntl
    except ImportError:
        return None

    @contextmanager
    def locked() -> Iterator[None]:
        db.parent.mkdir(parents=True, exist_ok=True)
        with open(db.with_name(db.name + ".lock"), "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    return locked()


def create_sqlite_store(db: Path) -> None:
    """Create and migrate a new SQLite store under a temporary name, then move it into place:
    a process killed during MLflow's schema migration leaves no half-made store behind; the
    half stores and journals of killed creators are removed (call under :func:`store_lock`)."""
    from bench.procs import remove_dead_leftovers

    if db.parent.is_dir():
        remove_dead_leftovers(db.parent.iterdir(),
                              re.escape(f".{db.name}.") + r"(?P<pid>\d+)\.tmp(-journal)?")
    if db.exists():
        return
    tmp = db.parent / f".{db.name}.{os.getpid()}.tmp"
    root = (db.parent / "artifacts").resolve().as_uri()
    template = _template()
    if template is None:
        _migrate(tmp, root)
    else:  # a copy of an empty store migrated once per MLflow version: seconds saved per store
        import shutil
        import sqlite3

        shutil.copyfile(template, tmp)
        with sqlite3.connect(tmp) as conn:  # the default experiment's folder, as MLflow sets it
            conn.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                         (f"{root}/0",))
        conn.close()
    os.replace(tmp, db)


def _migrate(path: Path, artifact_root: str) -> None:
    """Create an empty SQLite store at ``path`` with MLflow's migrations."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{path}", artifact_root)
    store.engine.dispose()


def _template() -> Path | None:
    """An empty store of this MLflow version in the user's cache (``$XDG_CACHE_HOME/bench``,
    else ``~/.cache/bench``), made on first use; None where the cache cannot be written."""
    from importlib.metadata import version

    base = os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "bench")
    path = Path(base) / f"mlflow-{version('mlflow')}-empty.db"
    if path.exists():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        from bench.procs import remove_dead_leftovers

        remove_dead_leftovers(path.parent.iterdir(),
                              re.escape(f".{path.name}.") + r"(?P<pid>\d+)\.tmp(-journal)?")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        _migrate(tmp, path.parent.resolve().as_uri())
        os.replace(tmp, path)
    except OSError:
        return None
    return path


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """A tracking server answers its ``/health`` within ``timeout`` seconds, or a one-line error
    (MLflow's own client would retry for minutes before failing)."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        raise BenchError(f"tracking server {uri} answered HTTP {exc.code} on /health: it is not "
                         "an MLflow tracking server, or a proxy is in the way (see http_proxy "
                         "and no_proxy); set --tracking-uri (or the suite's tracking_uri) to a "
                         "running MLflow server or a sqlite:/// file") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BenchError(f"tracking server {uri} is not reachable ({reason}): start it, or set "
                         "--tracking-uri (or the suite's tracking_uri) to a running server or "
                         "a sqlite:/// file") from None


def opening_error(uri: str, exc: BaseException) -> BenchError | None:
    """The message for a store that cannot be opened or used, or None for other errors."""
    text = str(exc)
    first = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
    where = sqlite_path(uri) or uri
    if any(c in text for c in CORRUPT):
        return BenchError(f"tracking store {where} is not a readable MLflow database ({first}):"
                          " restore it from a backup, or choose another --output")
    if LOCKED in text:
        return BenchError(f"tracking store {where} stayed locked by another process (a paused "
                          "or hung bench run, or a program holding the file open): resume or "
                          "stop it, then run again")
    if "alembic" in text.lower() or "already exists" in text:
        return BenchError(f"the tracking store {uri} cannot be opened: its schema is half "
                          "migrated (a process was killed while creating or upgrading it). If it "
                          "holds no results, delete it and run again; otherwise restore it from a "
                          f"backup. ({type(exc).__name__}: {first})")
    return None


class Retrying:
    """An MlflowClient whose calls retry while a SQLite store is locked by another process
    (for about 20 s); a store still locked, or corrupt, is a :class:`BenchError`."""

    def __init__(self, client: Any, uri: str, attempts: int = 14):
        self._client = client
        self._uri = uri
        self._attempts = attempts

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            for i in range(self._attempts):
                try:
                    return attr(*args, **kwargs)
                except BenchError:
                    raise
                except Exception as exc:
                    if LOCKED in str(exc) and i < self._attempts - 1:
                        time.sleep(0.05 * 2 ** min(i, 5))
                        continue
                    known = opening_error(self._uri, exc)
                    if known is None or "alembic" in str(exc).lower():
                        raise
                    raise known from exc
            raise AssertionError("unreachable")

        return call
