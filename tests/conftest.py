"""Shared fixtures: a tiny suite that trains in seconds on the CPU."""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one thread per test process: workers fill the cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")
# `bench run` remembers each folder's last run for `bench report` without a suite: in a
# throwaway folder here, never in the user's state folder
os.environ["BENCH_STATE_DIR"] = tempfile.mkdtemp(prefix="bench-state-")
atexit.register(shutil.rmtree, os.environ["BENCH_STATE_DIR"], True)

TINY_SUITE = """\
name: tiny
description: a tiny suite for tests
output: {output}
threads: 1
datasets:
  src:
    format: synthetic
    synthetic: {{n_classes: 3, n_images: 60, image_size: 16, palette: 1, seed: 3}}
    split: {{seed: 0, fractions: {{train: 1.0}}}}
  tgt:
    format: synthetic
    synthetic: {{n_classes: 3, n_images: 72, image_size: 16, imbalance: 0.5, seed: 5}}
    split: {{seed: 0, fractions: {{train: 0.5, test: 0.5}}}}
inits:
  rnd: {{arch: tiny_resnet_w8, weights: random, seed: 0}}
stages:
  sup:
    method: supervised
    data: [src:train]
    epochs: 1
    batch_size: 16
    image_size: 16
  bt:
    method: barlow_twins
    data: [tgt:train]
    warmup_epochs: 1
    epochs: 1
    unfreeze: last_block
    batch_size: 16
    image_size: 16
    params: {{projector: {{dims: [32, 32]}}, sparse_head: 0.01}}
protocols:
  ft:
    kind: fine_tune
    train: tgt:train
    test: tgt:test
    epochs: 1
    batch_size: 12
    image_size: 16
    tta: {{passes: 2}}
  lp:
    kind: linear_probe
    train: tgt:train
    test: tgt:test
    epochs: 1
    batch_size: 12
    image_size: 16
    lr_search: {{method: fixed, lr: 0.01}}
    tta: {{mode: clean}}
grid:
  inits: [rnd]
  chains: [[sup], [sup, bt]]
  protocols: [ft, lp]
seeds: {{count: 2}}
contrasts:
  - {{a: rnd+sup+bt/ft, b: rnd+sup/ft}}
"""


COST = {"test_demo_answers": 300, "test_concurrency": 260, "test_resume": 95,
        "test_sequential": 60, "test_study": 45, "test_controls": 45, "test_plugins": 35,
        "test_scale": 20, "test_across": 16, "test_paper_suites": 15, "test_report_store": 10}
"""The longest test modules and their rough seconds on 2 busy cores (``pytest --durations``):
an order of work, never a limit."""


def _module(item) -> str:
    return item.module.__name__.rsplit(".", 1)[-1]


def pytest_collection_modifyitems(items: list) -> None:
    """Deal the long modules (:data:`COST`) to the fronts of the workers' chunks, so that
    the workers end together.

    pytest-xdist's ``worksteal`` gives worker *i* of *N* the next ``remaining // (N - i)`` items
    of this order, each worker runs its chunk from the front, and an idle worker takes the back
    half of the busiest one's. So the long modules, kept whole (their module fixtures are made
    once), go longest first to the chunk with the least work (LPT), the short tests fill every
    chunk to its size in their order, and the stealing evens out the end in small pieces.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(_module(item), []).append(item)
    long = sorted((m for m in modules if m in COST), key=lambda m: -COST[m])
    short = [item for item in items if _module(item) not in COST]
    sizes, left = [], len(items)
    for i in range(workers):
        sizes.append(left // (workers - i))
        left -= sizes[-1]
    chunks: list[list] = [[] for _ in range(workers)]
    load = [0] * workers
    for m in long:
        room = [k for k in range(workers) if len(chunks[k]) + len(modules[m]) <= sizes[k]]
        k = min(room or range(workers), key=lambda k: load[k])
        chunks[k] += modules[m]
        load[k] += COST[m]
    rest = iter(short)
    for k in range(workers):
        chunks[k] += itertools.islice(rest, max(0, sizes[k] - len(chunks[k])))
    items[:] = [*itertools.chain.from_iterable(chunks), *rest]


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    """Path of a tiny suite whose output lies in ``tmp_path/out``."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SUITE.format(output=tmp_path / "out"))
    return path


@pytest.fixture
def write_suite(tmp_path: Path):
    """Write YAML text to a suite file and return its path."""

    def write(text: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def suite_plan(suite: Path, *overrides: str):
    """The plan of a suite file (no environment interpolation)."""
    from bench.plan import build_plan, load_suite

    return build_plan(load_suite(suite, list(overrides), env={}))


def suite_tracker(suite: Path, uri: str | None = None, name: str = "tiny"):
    """The tracker a suite whose output is ``<suite folder>/out`` writes to."""
    from bench.track import Tracker, default_tracking_uri

    out = suite.parent / "out"
    return Tracker(uri or default_tracking_uri(out), name, out / "artifacts")


def bench_process(*args: str, cwd: Path, env: dict[str, str] | None = None):
    """``bench <args>`` as a child process (unbuffered, stdout and stderr together)."""
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=cwd,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def shared_data() -> Path:
    """The real data folder named by ``BENCH_SHARED_DATA`` (HAM10000, ISIC 2019 CSVs)."""
    root = os.environ.get("BENCH_SHARED_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("real data not available: set BENCH_SHARED_DATA to the shared data folder")
    return Path(root)


def fill_store(plan, output: Path, values: dict[str, list[float | None]],
               metric: str = "accuracy") -> None:
    """Write trial runs into a real MLflow store, as ``bench run`` records them: ``values``
    maps a cell name to one value per trial (in plan order); None records a FAILED trial, NaN a
    finished trial whose metric is not finite (bench logs no NaN), inf is logged as is."""
    import math

    from bench.track import FINISHED, Tracker, default_tracking_uri

    tracker = Tracker(default_tracking_uri(output), plan.suite.name, output / "artifacts")
    seen: dict[str, int] = {}
    for t in plan.trials:
        vals = values.get(t.cell.name)
        if vals is None:
            continue
        i = seen[t.cell.name] = seen.get(t.cell.name, -1) + 1
        v = vals[i]
        tags = {"bench.cell": t.cell.name, "bench.seed": str(t.seed)}
        replicate = getattr(t.cell, "replicate", "")
        if replicate:
            tags["bench.replicate"] = replicate
        run = tracker.start("trial", t.key, f"{t.cell.name} seed={t.seed}", tags=tags)
        if v is None:
            tracker.fail(run, "NonFiniteLoss: the training loss became nan")
            continue
        if not math.isnan(v):
            tracker.log_metrics(run, {f"test_{metric}": v})
        tracker.finish(run, FINISHED)


def dead_pid() -> int:
    """The pid of a process that has ended (for leftovers "made by a killed process")."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def free_port() -> int:
    """A TCP port of loopback that nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(cmd: list[str], ready, timeout: float):
    """Start a server (``cmd``, in its own session) and wait until ``ready()`` is true; the
    process, or None when it died or was not ready within ``timeout`` seconds (it is killed)."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None or time.time() > deadline:
            stop(proc, signal.SIGKILL)
            return None
        time.sleep(0.3)
    return proc


def stop(proc, sig=None) -> None:
    """Stop a server started by :func:`serve` (SIGTERM, then SIGKILL after 30 s)."""
    import signal
    import subprocess

    try:
        os.killpg(proc.pid, sig or signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def postgres_uri():
    """A throwaway PostgreSQL server on loopback (``initdb`` + ``postgres``), yielding its URI;
    skipped where the binaries or the ``psycopg`` driver are missing. As root, the server runs
    as the ``postgres`` user (PostgreSQL refuses root)."""
    import shutil
    import subprocess
    import tempfile

    psycopg = pytest.importorskip("psycopg", reason="PostgreSQL driver not installed (pip "
                                                    "install 'bench[postgres]')")
    initdb, server = shutil.which("initdb"), shutil.which("postgres")
    if not (initdb and server):
        pytest.skip("PostgreSQL binaries (initdb, postgres) not installed")
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    done = subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "bench",
                           "--no-sync"], capture_output=True, text=True)
    uri = f"postgresql://bench@127.0.0.1:{port}/postgres"

    def ready() -> bool:
        try:
            psycopg.connect(uri).close()
            return True
        except psycopg.OperationalError:
            return False

    proc = None if done.returncode != 0 else serve(
        [*prefix, server, "-D", str(data), "-p", str(port), "-k", str(folder),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"], ready, 60)
    if proc is None:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start {done.stderr.strip()[-300:]}")
    yield uri
    stop(proc)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_uri: str) -> str:
    """A fresh, empty database on the test PostgreSQL server; its URI."""
    import uuid

    import psycopg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_uri, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_uri.rsplit("/", 1)[0] + f"/{name}"
