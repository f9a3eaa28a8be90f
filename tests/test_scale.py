"""Claims, status, verify, OOM failures, SLURM packing/requeue and progress output."""

from __future__ import annotations

import io
import os
import pickle
import time
from pathlib import Path

import pytest
import torch
from conftest import dead_pid, suite_tracker

from bench.cli import main
from bench.errors import BenchError
from bench.execute import claims
from bench.execute.leases import LeaseLost, Leases, check_timing, new_owner, retire_owner
from bench.execute.slurm import chunks, pack_units, waves
from bench.plan import build_plan, load_suite
from bench.track import FINISHED, KILLED, RUNNING, Tracker, default_tracking_uri

_tracker = suite_tracker


# ---------------------------------------------------------------- claims
def _claims(tracker: Tracker, folder: Path, owner: str | None = None, ttl: float = 180,
            heartbeat: float = 30) -> claims.Claims:
    """An owner's claims on ``tracker`` under the lease table ``folder/leases.db``."""
    table = Leases(f"sqlite:///{folder / 'leases.db'}", ttl=ttl, heartbeat=heartbeat)
    return claims.Claims(tracker, table, owner or new_owner())


def test_claim_is_exclusive_and_taken_over_only_from_the_dead(tiny_suite: Path) -> None:
    tracker, folder = _tracker(tiny_suite), tiny_suite.parent
    a, b = _claims(tracker, folder), _claims(tracker, folder)
    first = a.claim("trial", "k1", "x")
    assert first is not None and first.lease.generation == 1
    assert b.claim("trial", "k1", "x") is None  # held by a live owner
    assert [r.run_id for r in tracker.runs_for_key("k1")] == [first.run_id]  # the loser: nothing
    retire_owner(a.owner)  # its process "ended": the claim is dead at once on this host
    assert b.close_dead(tracker.runs()) == 1
    assert tracker.runs_for_key("k1")[0].status == KILLED
    second = b.claim("trial", "k1", "x")
    assert second is not None and second.lease.generation == 3  # voided once, then taken
    with b.leases.fenced(second.lease):
        tracker.finish(second.run_id)
    assert _claims(tracker, folder).claim("trial", "k1", "x") is None  # finished
    # another host's claim lives while its heartbeat is fresh (by the database clock), then
    # expires after the TTL and is taken over: the taker marks the old run KILLED
    other = _claims(tracker, folder, f"elsewhere:{os.getpid()}:abc", ttl=0.4, heartbeat=0.1)
    held = other.claim("trial", "k2", "y")
    impatient = _claims(tracker, folder, b.owner, ttl=0.4, heartbeat=0.1)
    assert held is not None and impatient.claim("trial", "k2", "y") is None
    time.sleep(0.5)
    taken = impatient.claim("trial", "k2", "y")
    assert taken is not None and taken.lease.generation == 2
    old = next(r for r in tracker.runs_for_key("k2") if r.run_id == held.run_id)
    assert old.status == KILLED and "taken over" in old.tags["bench.failure"]


def test_a_writer_that_lost_its_lease_writes_nothing(tiny_suite: Path) -> None:
    """The fence: after a take-over the old holder can neither renew nor end its unit."""
    tracker, folder = _tracker(tiny_suite), tiny_suite.parent
    slow = _claims(tracker, folder, f"elsewhere:{os.getpid()}:slow", ttl=0.4, heartbeat=0.1)
    paused = slow.claim("trial", "f1", "x")
    assert paused is not None
    time.sleep(0.5)  # "paused" past the TTL
    rival = _claims(tracker, folder, ttl=0.4, heartbeat=0.1).claim("trial", "f1", "x")
    assert rival is not None
    assert slow.leases.renew([paused.lease]) == [paused.lease]
    with pytest.raises(LeaseLost, match=r"generation 1.*generation 2"):
        with slow.leases.fenced(paused.lease):
            tracker.finish(paused.run_id)  # never reached
    assert not slow.leases.release(paused.lease)
    statuses = {r.run_id: r.status for r in tracker.runs_for_key("f1")}
    assert statuses == {paused.run_id: KILLED, rival.run_id: RUNNING}


def test_a_stale_view_never_kills_a_run_that_finished_meanwhile(tiny_suite: Path) -> None:
    """Workers read the store incrementally: a run seen RUNNING may have finished (and its
    lease been marked done) before the lease table is read. It must stay FINISHED."""
    tracker, folder = _tracker(tiny_suite), tiny_suite.parent
    mine = _claims(tracker, folder)
    claim = mine.claim("trial", "s1", "x")
    stale = tracker.runs()
    with mine.leases.fenced(claim.lease):
        tracker.finish(claim.run_id)
    assert _claims(tracker, folder).close_dead(stale) == 0
    assert tracker.status(claim.run_id) == FINISHED


def test_racing_claimants_win_each_key_once(tmp_path: Path) -> None:
    """Four claimants (threads, each with its own MLflow client, lease engine and owner) claim
    eight keys in shuffled orders: each key is won once and the losers leave nothing."""
    import random
    import threading

    uri = default_tracking_uri(tmp_path)
    Tracker(uri, "race")  # the store exists before the race
    keys = [f"k{i}" for i in range(8)]
    wins: list[list[str]] = [[] for _ in range(4)]
    go = threading.Barrier(4)

    def claimant(i: int) -> None:
        rng = random.Random(i)
        mine = _claims(Tracker(uri, "race"), tmp_path)
        order = rng.sample(keys, len(keys))
        go.wait()
        wins[i] = [k for k in order if mine.claim("trial", k, k) is not None]

    threads = [threading.Thread(target=claimant, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(k for w in wins for k in w) == keys, wins
    runs = Tracker(uri, "race").runs()
    assert sorted(r.key for r in runs) == keys
    assert {r.status for r in runs} == {RUNNING}


def test_claim_many_skips_held_and_finished_keys(tiny_suite: Path) -> None:
    tracker, folder = _tracker(tiny_suite), tiny_suite.parent
    held = _claims(tracker, folder).claim("trial", "m2", "x")
    done = _claims(tracker, folder).claim("trial", "m4", "x")
    tracker.finish(done.run_id)  # finished, its lease not yet marked done
    got = _claims(tracker, folder).claim_many(
        [claims.ClaimRequest("trial", f"m{i}", f"m{i}") for i in range(8)])
    assert [g is not None for g in got] == [True, True, False, True, False, True, True, True]
    assert {r.key: r.run_id for r in tracker.runs() if r.key == "m2"} == {"m2": held.run_id}


def test_heartbeat_renews_held_leases_and_notes_lost_ones(tiny_suite: Path) -> None:
    tracker, folder = _tracker(tiny_suite), tiny_suite.parent
    mine = _claims(tracker, folder, f"elsewhere:{os.getpid()}:hb", ttl=0.4, heartbeat=0.1)
    kept, lost = mine.claim("trial", "k3", "z"), mine.claim("trial", "k4", "z")
    with claims.Heartbeat(mine.leases, interval=0.1) as hb:
        hb.hold(kept.run_id, kept.lease)
        time.sleep(0.6)  # longer than the TTL: only the renewed lease stays live
    rows = mine.leases.rows()
    assert mine.leases.live(rows["k3"]) and not mine.leases.live(rows["k4"])
    assert _claims(tracker, folder, ttl=0.4, heartbeat=0.1).claim("trial", "k4", "z")
    hb = claims.Heartbeat(mine.leases)
    hb.hold(lost.run_id, lost.lease)
    hb.beat()
    with pytest.raises(LeaseLost):
        hb.check(lost.run_id)


def test_lease_timing_and_store_are_checked() -> None:
    with pytest.raises(BenchError, match=r"BENCH_CLAIM_TTL \(20 s\) must exceed 3 × "
                                         r"BENCH_HEARTBEAT_S \(30 s\)"):
        check_timing(20, 30)
    with pytest.raises(BenchError):
        check_timing(90, 30)  # the bound itself is refused
    check_timing(90.5, 30)


def test_the_lease_defaults_are_the_documented_ones(monkeypatch) -> None:
    from bench.execute.leases import claim_ttl, heartbeat_seconds

    monkeypatch.delenv("BENCH_CLAIM_TTL", raising=False)
    monkeypatch.delenv("BENCH_HEARTBEAT_S", raising=False)
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert f"`BENCH_CLAIM_TTL` seconds (default {claim_ttl():g})" in readme
    assert f"`BENCH_HEARTBEAT_S` seconds (default {heartbeat_seconds():g})" in readme
    check_timing(claim_ttl(), heartbeat_seconds())
    with pytest.raises(BenchError, match="'mysql' is not supported"):
        Leases("mysql://u@h/db")


# ---------------------------------------------------------------- status, verify
def test_status_and_verify(tiny_suite: Path, capsys) -> None:
    assert main(["run", str(tiny_suite), "--set", "seeds.count=1"]) == 0
    capsys.readouterr()
    assert main(["status", str(tiny_suite)]) == 0
    out = capsys.readouterr().out
    assert "finished  rnd+sup+bt" in out
    assert out.splitlines()[-1].split()[1:] == ["4", "0", "0", "0", "4"]  # 4 finished, 4 pending
    assert main(["verify", str(tiny_suite)]) == 0
    out = capsys.readouterr().out
    assert "OK: data manifests, splits, weights and encoders match" in out
    assert "data hash(es)" in out and "encoders hash(es)" in out and "split hash(es)" in out
    runs = _tracker(tiny_suite).runs("trial")
    for tag in ("bench.git_commit", "bench.torch", "bench.cuda", "bench.cudnn_deterministic",
                "bench.weights", "bench.encoder_sha256", "bench.split.tgt"):
        assert all(tag in r.tags for r in runs if "sup+bt" in r.tags["bench.cell"]), tag
    # a replaced encoder file and changed data are both reported, with the runs concerned
    enc = next((tiny_suite.parent / "out" / "encoders").glob("*.pt"))
    state = torch.load(enc, weights_only=True)
    next(iter(state.values())).add_(1.0)
    torch.save(state, enc)
    assert main(["verify", str(tiny_suite), "--set", "datasets.tgt.synthetic.seed=6"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "encoder" in out and "manifest.tgt:train" in out


def test_out_of_memory_fails_the_trial_with_a_hint(tiny_suite: Path, monkeypatch,
                                                   capsys) -> None:
    import bench.protocols.fine_tune as fine_tune

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(fine_tune, "run_trial", out_of_memory)  # the fine-tune runner's trials
    sets = ["--set", "grid.chains=[[]]", "--set", "contrasts=[]"]
    assert main(["run", str(tiny_suite), *sets]) == 1
    runs = _tracker(tiny_suite).runs("trial")
    failed = [r for r in runs if r.status == "FAILED"]
    assert len(failed) == 2 and len([r for r in runs if r.status == FINISHED]) == 2
    assert all("lower the batch_size" in r.tags["bench.failure"] for r in failed)
    assert "out of GPU memory" in capsys.readouterr().err


# ---------------------------------------------------------------- SLURM planning
def test_packing_and_array_chunks() -> None:
    secs = {f"t{i}": 10.0 for i in range(10)}
    packs = pack_units([["t0", "t1", "t2"], ["t3", "t4", "t5"], ["t6"], ["t7", "t8", "t9"]],
                       secs, 40.0)
    assert [p.keys for p in packs] == [["t0", "t1", "t2"], ["t3", "t4", "t5", "t6"],
                                       ["t7", "t8", "t9"]]
    # a group larger than the target is split; nothing is lost or repeated
    packs = pack_units([[f"t{i}" for i in range(10)]], secs, 25.0)
    assert [len(p.keys) for p in packs] == [2, 2, 2, 2, 2]
    assert [k for p in packs for k in p.keys] == [f"t{i}" for i in range(10)]
    assert [len(c) for c in chunks(packs, 2)] == [2, 2, 1]


def test_waves_follow_the_dag(tiny_suite: Path) -> None:
    plan = build_plan(load_suite(tiny_suite, env={}))
    w = waves(plan, plan.trials, {s.key for s in plan.stages})
    sup, bt = plan.stages  # bt is trained on top of sup
    assert w[0] == [[sup.key]] and w[1] == [[bt.key]]
    assert sorted(k for g in w[2] for k in g) == sorted(t.key for t in plan.trials)
    assert all(len({t.cell.key for t in plan.trials if t.key in g}) == 1 for g in w[2])


def test_requeue_releases_the_task_claims(tiny_suite: Path) -> None:
    submitit = pytest.importorskip("submitit")
    from bench.execute import slurm
    from bench.execute.curves import Curves
    from bench.execute.runners import UnitRunner

    tracker = _tracker(tiny_suite)
    mine = _claims(tracker, tiny_suite.parent)
    claim = mine.claim("trial", "k9", "q")

    class Fake:
        runner = UnitRunner.__new__(UnitRunner)

    Fake.runner.claims, Fake.runner.tracker, Fake.runner.heartbeat = mine, tracker, None
    Fake.runner.curves = Curves(tracker)
    Fake.runner._open = {claim.run_id: claim.lease}

    from bench.execute.request import RunRequest

    request = RunRequest(suite=tiny_suite, output=tiny_suite.parent / "out", tracking_uri="x")
    task = slurm.PackTask(request.restricted(["k9"]))
    assert pickle.loads(pickle.dumps(task)).keys == ["k9"]  # what submitit sends
    slurm._CURRENT[:] = [Fake()]
    try:
        again = task.checkpoint()
    finally:
        slurm._CURRENT.clear()
    assert isinstance(again, submitit.helpers.DelayedSubmission)
    assert again.function.keys == ["k9"]
    rec = tracker.runs_for_key("k9")[0]
    assert rec.status == KILLED and "requeued" in rec.tags["bench.failure"]
    assert mine.leases.rows()["k9"].state == "free"  # the requeued task takes it at once


# ---------------------------------------------------------------- progress
def test_progress_plain_without_a_terminal_and_rich_bars_on_one(capsys) -> None:
    from rich.console import Console

    from bench.progress import Progress, RichProgress, make_progress

    plain = make_progress()  # pytest's stdout is not a TTY
    assert type(plain) is Progress
    plain.epoch("rnd/ft seed=0", 1, 3, 0.5)
    assert capsys.readouterr().out == "  rnd/ft seed=0: epoch 1/3 loss 0.5000\n"
    bars = RichProgress()
    bars.bars.console.file = io.StringIO()
    bars.console = bars.bars.console
    bars.set_total(4)
    bars.unit("stage x", 2)
    bars.epoch("stage x", 1, 2, 1.25)
    bars.advance()
    task = bars.bars.tasks[0]
    assert task.total == 4 and task.completed == 1
    assert bars.bars.tasks[1].fields["info"] == "loss 1.2500"
    bars.close()
    assert isinstance(bars.console, Console)


def test_worker_environments_pin_one_gpu_each_or_share_the_cores(monkeypatch) -> None:
    from bench.execute.workers import worker_env

    monkeypatch.delenv("BENCH_THREADS", raising=False)
    envs = [worker_env(i, 3, ["0", "2", "5"]) for i in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "2", "5"]
    assert all(e["BENCH_PLAIN"] == "1" for e in envs)
    cpu = worker_env(1, 2, None)
    assert "CUDA_VISIBLE_DEVICES" not in cpu or cpu["CUDA_VISIBLE_DEVICES"] == os.environ.get(
        "CUDA_VISIBLE_DEVICES")
    assert cpu["BENCH_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))


def test_store_view_refreshes_incrementally_and_equals_a_full_read(tiny_suite: Path) -> None:
    from bench.execute.store import StoreView

    tracker = _tracker(tiny_suite)
    mine = _claims(tracker, tiny_suite.parent)
    done = mine.claim("trial", "a", "a").run_id
    tracker.finish(done)
    held = mine.claim("trial", "b", "b").run_id
    view = StoreView(tracker)

    def state(records) -> dict[str, str]:
        return {r.run_id: r.status for r in records}

    assert state(view.refresh()) == {done: FINISHED, held: RUNNING}
    tracker.finish(held, KILLED)  # a RUNNING run ends
    new = mine.claim("trial", "c", "c").run_id  # a new claim appears
    lost = tracker.start("trial", "d", "d")
    tracker.delete_run(lost)  # a claim that lost is deleted
    searches: list[set[str]] = []  # the ids each of the view's searches returned
    runs = tracker.runs

    def counted(*args, **kwargs):
        out = runs(*args, **kwargs)
        searches.append({r.run_id for r in out})
        return out

    tracker.runs = counted  # type: ignore[method-assign]
    seen = view.refresh()
    tracker.runs = runs  # type: ignore[method-assign]
    assert view._last_full > 0 and state(seen) == state(tracker.runs())
    assert state(seen) == {done: FINISHED, held: KILLED, new: RUNNING}
    assert [r.run_id for r in seen] == [r.run_id for r in tracker.runs()]  # oldest first
    # incremental: the RUNNING runs, then the newly ended one; the run read FINISHED before
    # (within the clock margin) is not read again
    assert searches == [{new}, {held}]


def test_a_store_is_created_whole_or_not_at_all(tmp_path: Path) -> None:
    """The SQLite store is migrated under a temporary name and moved into place; leftovers of a
    creator killed half-way are removed."""
    db = tmp_path / "out" / "mlflow.db"
    db.parent.mkdir()
    pid = dead_pid()
    leftovers = [db.parent / f".mlflow.db.{pid}.tmp", db.parent / f".mlflow.db.{pid}.tmp-journal"]
    for left in leftovers:
        left.write_bytes(b"half a database")
    Tracker(f"sqlite:///{db}", "x", tmp_path / "artifacts")
    assert db.exists() and not any(p.exists() for p in leftovers)
    assert not list(db.parent.glob(".mlflow.db.*"))
    for left in leftovers:  # also when the store exists
        left.write_bytes(b"half a database")
    tracker = Tracker(f"sqlite:///{db}", "x", tmp_path / "artifacts")
    assert not list(db.parent.glob(".mlflow.db.*"))
    # made from a migrated template: the schema MLflow expects, the default experiment's folder
    # where MLflow would have put it
    default = tracker.client.get_experiment("0").artifact_location
    assert default == f"{(db.parent / 'artifacts').resolve().as_uri()}/0"
    import sqlite3

    from bench.mlflow_store import _migrate

    _migrate(tmp_path / "direct.db", "file:///x")
    def schema(path: Path) -> tuple[list, dict]:
        with sqlite3.connect(path) as conn:  # (the CHECK lists of one table vary in order)
            names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master ORDER BY name")]
            return (conn.execute("SELECT version_num FROM alembic_version").fetchall(),
                    {n: conn.execute(f"PRAGMA table_info('{n}')").fetchall() for n in names})

    assert schema(db) == schema(tmp_path / "direct.db")
