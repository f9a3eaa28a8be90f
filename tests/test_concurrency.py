"""Several processes on one suite: claims, workers, a live MLflow server, SIGKILLs, SLURM path.

Every test checks the same three things: each unit (stage, lr search, trial) of the plan has
exactly one live run and it is FINISHED; no trial was trained twice (the workers' own lines); and
the metrics equal those of one uninterrupted process in another store (CPU runs are exact).
"""

from __future__ import annotations

import hashlib
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from conftest import TINY_SUITE, bench_process, free_port, serve, stop, suite_plan, suite_tracker

from bench.execute.scheduler import search_key
from bench.results import load_results
from bench.track import FINISHED

pytestmark = pytest.mark.slow

# the tiny suite with a per-cell LR finder on the fine-tune cells (a claimable search unit)
SEARCH = "    tta: {{passes: 2}}\n"
SUITE = TINY_SUITE.replace(SEARCH, SEARCH + "    lr_search: {{method: lr_finder, num_it: 10}}\n")
ENV = {"BENCH_POLL_S": "0.3", "PYTHONUNBUFFERED": "1", "BENCH_PLAIN": "1"}


def _write(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.yaml"
    path.write_text(SUITE.format(output=folder / "out"))
    return path


def _bench(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return bench_process(*args, cwd=cwd, env={**ENV, **(env or {})})


_plan = suite_plan
_tracker = suite_tracker


def _metrics(suite: Path, uri: str | None = None) -> dict[str, tuple[float, float]]:
    df = load_results(_plan(suite), _tracker(suite, uri))
    return {k: (round(a, 6), round(f, 6)) for k, a, f in
            zip(df["trial_key"], df["accuracy"], df["f1_weighted"], strict=True)}


def _assert_exactly_once(suite: Path, uri: str | None = None) -> None:
    plan = _plan(suite)
    units = ([s.key for s in plan.stages] + [t.key for t in plan.trials]
             + [search_key(c) for c in plan.cells if c.spec.lr_search.method != "fixed"])
    runs = _tracker(suite, uri).runs()
    per_key = Counter(r.key for r in runs if r.kind != "cell")
    assert {k: per_key[k] for k in units} == {k: 1 for k in units}, per_key
    assert all(r.status == FINISHED for r in runs if r.key in set(units))
    cells = Counter(r.key for r in runs if r.kind == "cell")
    assert set(cells.values()) == {1} and len(cells) == len(plan.cells)


def _trained_lines(outputs: list[str]) -> Counter:
    """'[k/n, eta …] <cell> seed=<s>: accuracy …' lines across processes and workers (prefixed
    '[w<i>] '): how often each trial was trained."""
    seen: Counter = Counter()
    for text in outputs:
        seen.update(m.group(1) for m in re.finditer(
            r"\[\d+/\d+, eta [^\]]+\] (\S+ seed=\d+): accuracy", text))
    return seen


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, tuple[float, float]]:
    """Metrics of one uninterrupted process."""
    suite = _write(tmp_path_factory.mktemp("reference"))
    proc = _bench("run", str(suite), cwd=suite.parent)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return _metrics(suite)


def test_two_runners_of_three_workers_run_every_unit_once(tmp_path: Path, reference) -> None:
    suite = _write(tmp_path)
    procs = [_bench("run", str(suite), "--workers", "3", cwd=tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=400)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all("started 3 worker(s)" in out for out in outs)
    _assert_exactly_once(suite)
    trained = _trained_lines(outs)
    assert len(trained) == 8 and set(trained.values()) == {1}, trained
    assert _metrics(suite) == reference


def _locked(out: Path) -> bool:
    """Whether a process holds any lock of the output's SQLite stores: a write lock, or a read
    lock (an open read transaction), which a stopped process would keep for ever and which keeps
    every writer from committing. ``BEGIN EXCLUSIVE`` is refused in both cases."""
    import sqlite3

    for db in (out / "mlflow.db", out / "leases.db"):
        conn = sqlite3.connect(db, timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("ROLLBACK")
        except sqlite3.OperationalError:
            return True
        finally:
            conn.close()
    return False


def _stage_lease(leases, stage_key: str, pid: int):
    """The lease row of ``stage_key`` when process ``pid`` holds it and trains under it."""
    row = leases.rows([stage_key]).get(stage_key)
    if row is not None and row.state == "held" and row.owner.split(":")[1] == str(pid) \
            and row.run_id is not None:
        return row
    return None


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_paused_runner_never_finishes_its_unit_twice(tmp_path: Path, store: str,
                                                       request) -> None:
    """Runner A is stopped (SIGSTOP) while it trains a stage and stays stopped past the TTL;
    runner B takes the stage over and finishes the suite; A, resumed (SIGCONT), finds its lease
    taken, discards its result and leaves B's runs and encoder as they were."""
    from bench.execute.leases import Leases, claims_uri_for
    from bench.track import KILLED, Tag

    suite = _write(tmp_path)
    small = ["stages.sup.epochs=20", "grid.chains=[[sup]]", "grid.protocols=[lp]",
             "seeds.count=1", "contrasts=[]"]
    args = ["run", str(suite), *[a for o in small for a in ("--set", o)]]
    uri = claims_uri_for(None, f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}", tmp_path / "out")
    if store == "postgresql":
        uri = request.getfixturevalue("postgres_database")
        args += ["--claims-uri", uri]
    env = {"BENCH_HEARTBEAT_S": "0.3", "BENCH_CLAIM_TTL": "1.5"}
    a = _bench(*args, cwd=tmp_path, env=env)
    plan = _plan(suite, *small)
    sup = next(s for s in plan.stages if s.name == "sup")
    leases, deadline = None, time.time() + 120
    while True:  # wait until A trains the stage, then stop it outside any SQLite write
        if leases is None and (store == "postgresql" or (tmp_path / "out" / "leases.db").exists()):
            leases = Leases(uri, ttl=1.5, heartbeat=0.3)
        if leases is not None and _stage_lease(leases, sup.key, a.pid):
            a.send_signal(signal.SIGSTOP)
            if not _locked(tmp_path / "out"):
                break
            a.send_signal(signal.SIGCONT)  # a stopped writer would block every process
        assert a.poll() is None and time.time() < deadline, a.communicate()[0]
        time.sleep(0.02)
    try:
        held = _stage_lease(leases, sup.key, a.pid)
        assert held is not None, "A finished the stage before it could be paused"
        b = _bench(*args, cwd=tmp_path, env=env)
        out_b, _ = b.communicate(timeout=300)
        assert b.returncode == 0, out_b
        encoder = tmp_path / "out" / "encoders" / f"{sup.key}.pt"
        before = encoder.stat()
    finally:
        a.send_signal(signal.SIGCONT)
    out_a, _ = a.communicate(timeout=300)
    assert a.returncode == 0, out_a
    _assert_exactly_once_finished(suite, *small)
    runs = {r.run_id: r for r in _tracker(suite).runs_for_key(sup.key)}
    assert runs[held.run_id].status == KILLED
    (winner,) = [r for r in runs.values() if r.status == FINISHED]
    after = encoder.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert hashlib.sha256(encoder.read_bytes()).hexdigest() == winner.tags[Tag.ENCODER_SHA]
    assert not list(encoder.parent.glob("*.tmp"))
    assert f"stage {sup.display}: lost its lease (generation {held.generation})" in out_a
    assert "its result is discarded" in out_a


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """A real ``mlflow server`` on loopback with a SQLite backend; yields its URI."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    proc = serve([str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
                  "--port", str(port), "--backend-store-uri",
                  f"sqlite:///{tmp_path / 'server.db'}", "--default-artifact-root",
                  (tmp_path / "server-artifacts").as_uri(), "--workers", "2"], ready, 120)
    if proc is None:
        pytest.fail("mlflow server did not start")
    yield uri
    stop(proc, signal.SIGKILL)


def test_two_runners_against_a_live_mlflow_server(tmp_path: Path, mlflow_server: str,
                                                  reference) -> None:
    """One runner of two workers and one plain runner share a tracking server (their leases in
    the output folder's leases.db)."""
    suite = _write(tmp_path)
    args = ["run", str(suite), "--tracking-uri", mlflow_server]
    procs = [_bench(*args, "--workers", "2", cwd=tmp_path), _bench(*args, cwd=tmp_path)]
    outs = [p.communicate(timeout=400)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "started 2 worker(s)" in outs[0]
    _assert_exactly_once(suite, mlflow_server)
    trained = _trained_lines(outs)
    assert len(trained) == 8 and set(trained.values()) == {1}, trained
    assert _metrics(suite, mlflow_server) == reference
    assert (tmp_path / "out" / "leases.db").exists()


def test_ten_sigkills_lose_nothing_change_nothing_and_leave_nothing(tmp_path: Path,
                                                                    reference) -> None:
    suite = _write(tmp_path)
    rng = random.Random(20261125)
    finished_before: set[str] = set()
    scratch = tmp_path / "tmp"  # the processes' temporary directory
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    left: set[str] = set()  # scratch folders killed processes left behind
    for i in range(10):
        before = set(scratch.glob("bench-*"))  # a killed process's, until this one removes it
        proc = _bench("run", str(suite), cwd=tmp_path, env=env)
        if i % 2 == 0:  # at a random time: while importing, opening the store, planning, training
            time.sleep(rng.uniform(1.5, 9.0))
        else:  # while it trains (its own scratch folder exists), however fast this machine is
            deadline = time.monotonic() + 60
            while proc.poll() is None and not set(scratch.glob("bench-*")) - before \
                    and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.1, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        left |= {p.name for p in scratch.glob("bench-*")}  # (the next run removes them)
        runs = _tracker(suite).runs() if (tmp_path / "out" / "mlflow.db").exists() else []
        finished = {r.key for r in runs if r.status == FINISHED}
        assert finished >= finished_before  # nothing finished is ever lost
        finished_before = finished
        per_key = Counter(r.key for r in runs if r.status == FINISHED)
        assert not [k for k, n in per_key.items() if n > 1]
    proc = _bench("run", str(suite), cwd=tmp_path, env=env)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    _assert_exactly_once_finished(suite)
    assert _metrics(suite) == reference
    # the killed processes' scratch folders, half-written encoders and half-made stores are gone
    assert left, "the storm left no scratch folder behind: nothing was tested"
    assert not list(scratch.glob("bench-*")), left
    out_dir = tmp_path / "out"
    assert not list(out_dir.glob("encoders/*.tmp")) and not list(out_dir.glob(".mlflow.db.*"))


def _assert_exactly_once_finished(suite: Path, *overrides: str) -> None:
    """After kills, KILLED runs may remain beside the FINISHED one; never two FINISHED."""
    plan = _plan(suite, *overrides)
    runs = _tracker(suite).runs()
    finished = Counter(r.key for r in runs if r.status == FINISHED and r.kind != "cell")
    units = [s.key for s in plan.stages] + [t.key for t in plan.trials]
    assert {k: finished[k] for k in units} == {k: 1 for k in units}
    assert not [r for r in runs if r.status == "RUNNING" and r.kind != "cell"]


def test_submitit_local_executor_runs_the_suite_through_the_slurm_path(tmp_path: Path,
                                                                       reference) -> None:
    pytest.importorskip("submitit")
    suite = _write(tmp_path)
    suite.write_text(suite.read_text() + "slurm: {cluster: local, pack_minutes: 0.9, "
                                         "trial_minutes: 0.2, time_min: 10}\n")
    proc = _bench("run", str(suite), "--executor", "slurm", cwd=tmp_path)
    out, _ = proc.communicate(timeout=500)
    assert proc.returncode == 0, out
    # waves: the supervised stage, then the BT stage on top of it, then the trials (packed)
    assert "wave 1: 1 unit(s) in 1 task(s)" in out
    assert "wave 2: 1 unit(s) in 1 task(s)" in out
    assert "wave 3: 8 unit(s) in 2 task(s)" in out
    assert "slurm: 8 of 8 trial(s) finished" in out
    _assert_exactly_once(suite)
    assert _metrics(suite) == reference
    logs = list((tmp_path / "out" / "slurm").glob("*_result.pkl"))
    assert len(logs) == 4
