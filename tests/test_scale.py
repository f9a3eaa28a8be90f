"""Claims, status, verify, OOM failures, SLURM packing/requeue and progress output."""

from __future__ import annotations

import io
import os
import pickle
import time
from pathlib import Path

import pytest
import torch
from conftest import suite_tracker

from bench.cli import main
from bench.execute import claims
from bench.execute.slurm import chunks, pack_units, waves
from bench.plan import build_plan, load_suite
from bench.track import FINISHED, KILLED, RUNNING, Tracker, default_tracking_uri

_tracker = suite_tracker


# ---------------------------------------------------------------- claims
def test_claim_is_exclusive_and_expires(tiny_suite: Path, monkeypatch) -> None:
    tracker = _tracker(tiny_suite)
    a, b = claims.new_owner(), claims.new_owner()
    first = claims.claim(tracker, a, "trial", "k1", "x")
    assert first is not None
    assert claims.claim(tracker, b, "trial", "k1", "x") is None  # held by a live owner
    assert [r.run_id for r in tracker.runs_for_key("k1")] == [first]  # the loser left nothing
    claims.retire_owner(a)  # its process "ended": the claim is dead at once on this host
    assert claims.close_dead(tracker, tracker.runs()) == 1
    assert tracker.runs_for_key("k1")[0].status == KILLED
    second = claims.claim(tracker, b, "trial", "k1", "x")
    assert second is not None
    tracker.finish(second)
    assert claims.claim(tracker, claims.new_owner(), "trial", "k1", "x") is None  # finished
    # another host's claim lives while its heartbeat is fresh, then expires after the TTL
    other = f"elsewhere:{os.getpid()}:abc"
    run = claims.claim(tracker, other, "trial", "k2", "y")
    assert run is not None
    assert claims.claim(tracker, b, "trial", "k2", "y") is None
    monkeypatch.setenv("BENCH_CLAIM_TTL", "0.2")
    time.sleep(0.3)
    assert claims.claim(tracker, b, "trial", "k2", "y") is not None
    assert claims.close_dead(tracker, tracker.runs()) == 1  # the expired one


@pytest.mark.parametrize("fenced", [False, True], ids=["sqlite-lock", "server-fence"])
def test_racing_claimants_win_each_key_once(tmp_path: Path, monkeypatch, fenced: bool) -> None:
    """Four claimants (threads, each with its own client and owner) claim eight keys in shuffled
    orders. In the fenced run every write lands up to 0.3 s after its start time (a server under
    load), so a rival that started earlier can become visible after a claimant has read the key's
    runs: the race that let two processes train one trial when claims were ordered by start time
    without a fence."""
    import random
    import threading

    uri = default_tracking_uri(tmp_path)
    Tracker(uri, "race")  # the store exists before the race
    monkeypatch.setenv("BENCH_CLAIM_FENCE_S", "0.6")
    if fenced:
        monkeypatch.setattr(claims, "store_lock", lambda uri: None)
    keys = [f"k{i}" for i in range(8)]
    wins: list[list[str]] = [[] for _ in range(4)]
    go = threading.Barrier(4)

    def claimant(i: int) -> None:
        rng = random.Random(i)
        tracker = Tracker(uri, "race")
        if fenced:
            start = tracker.start

            def slow_start(*args, **kwargs):
                time.sleep(rng.uniform(0.0, 0.3))
                return start(*args, **kwargs)

            tracker.start = slow_start  # type: ignore[method-assign]
        owner = claims.new_owner()
        order = rng.sample(keys, len(keys))
        go.wait()
        wins[i] = [k for k in order if claims.claim(tracker, owner, "trial", k, k) is not None]

    threads = [threading.Thread(target=claimant, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(k for w in wins for k in w) == keys, wins
    runs = Tracker(uri, "race").runs()
    assert sorted(r.key for r in runs) == keys  # the losers left nothing behind
    assert {r.status for r in runs} == {RUNNING}


def test_a_fenced_claim_yields_to_an_older_rival_that_appears_late(tiny_suite: Path,
                                                                   monkeypatch) -> None:
    tracker = _tracker(tiny_suite)
    monkeypatch.setattr(claims, "store_lock", lambda uri: None)
    monkeypatch.setenv("BENCH_CLAIM_FENCE_S", "0.5")
    rival = {}
    start = tracker.start

    def start_then_rival(*args, **kwargs):  # an older claim whose write lands after ours
        mine = start(*args, **kwargs)
        tags = {claims.OWNER_TAG: "elsewhere:1:x", claims.HEARTBEAT_TAG: f"{time.time():.3f}"}
        rival["id"] = start("trial", "late", "r", tags=tags,
                            start_time=kwargs["start_time"] - 100)
        return mine

    monkeypatch.setattr(tracker, "start", start_then_rival)
    assert claims.claim(tracker, claims.new_owner(), "trial", "late", "x") is None
    assert [r.run_id for r in tracker.runs_for_key("late")] == [rival["id"]]

    def slow_start(*args, **kwargs):  # a write slower than the fence cannot be ordered: give up
        time.sleep(0.6)
        return start(*args, **kwargs)

    monkeypatch.setattr(tracker, "start", slow_start)
    assert claims.claim(tracker, claims.new_owner(), "trial", "slow", "x") is None
    assert tracker.runs_for_key("slow") == []
    monkeypatch.setattr(tracker, "start", start)
    assert claims.claim(tracker, claims.new_owner(), "trial", "slow", "x") is not None


@pytest.mark.parametrize("fenced", [False, True], ids=["sqlite-lock", "server-fence"])
def test_claim_many_skips_held_keys_and_waits_one_fence(tiny_suite: Path, monkeypatch,
                                                         fenced: bool) -> None:
    tracker = _tracker(tiny_suite)
    if fenced:
        monkeypatch.setattr(claims, "store_lock", lambda uri: None)
    monkeypatch.setenv("BENCH_CLAIM_FENCE_S", "0.5")
    held = claims.claim(tracker, claims.new_owner(), "trial", "m2", "x")
    done = claims.claim(tracker, claims.new_owner(), "trial", "m4", "x")
    tracker.finish(done)
    began = time.time()
    got = claims.claim_many(tracker, claims.new_owner(),
                            [claims.ClaimRequest("trial", f"m{i}", f"m{i}") for i in range(8)])
    assert time.time() - began < 2.5  # eight claims one by one would wait 8 × 0.5 s
    assert [g is not None for g in got] == [True, True, False, True, False, True, True, True]
    assert {r.key: r.run_id for r in tracker.runs() if r.key == "m2"} == {"m2": held}


def test_heartbeat_refreshes_held_runs(tiny_suite: Path) -> None:
    tracker = _tracker(tiny_suite)
    run = claims.claim(tracker, claims.new_owner(), "trial", "k3", "z")
    before = float(tracker.runs_for_key("k3")[0].tags[claims.HEARTBEAT_TAG])
    with claims.Heartbeat(tracker, interval=0.1) as hb:
        hb.hold(run)
        time.sleep(0.5)
    after = float(tracker.runs_for_key("k3")[0].tags[claims.HEARTBEAT_TAG])
    assert after > before


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

    tracker = _tracker(tiny_suite)
    owner = claims.new_owner()
    run = claims.claim(tracker, owner, "trial", "k9", "q")

    class Fake:
        def __init__(self) -> None:
            self.tracker = tracker
            self._heartbeat = claims.Heartbeat(tracker)
            self._heartbeat.hold(run)

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
    assert rec.status != RUNNING


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
    owner = claims.new_owner()
    done = claims.claim(tracker, owner, "trial", "a", "a")
    tracker.finish(done)
    held = claims.claim(tracker, owner, "trial", "b", "b")
    view = StoreView(tracker)

    def state(records) -> dict[str, str]:
        return {r.run_id: r.status for r in records}

    assert state(view.refresh()) == {done: FINISHED, held: RUNNING}
    tracker.finish(held, KILLED)  # a RUNNING run ends
    new = claims.claim(tracker, owner, "trial", "c", "c")  # a new claim appears
    lost = tracker.start("trial", "d", "d")
    tracker.delete_run(lost)  # a claim that lost is deleted
    seen = view.refresh()
    assert view._last_full > 0 and state(seen) == state(tracker.runs())
    assert state(seen) == {done: FINISHED, held: KILLED, new: RUNNING}
    assert [r.run_id for r in seen] == [r.run_id for r in tracker.runs()]  # oldest first


def test_a_store_is_created_whole_or_not_at_all(tmp_path: Path) -> None:
    """The SQLite store is migrated under a temporary name and moved into place; leftovers of a
    creator killed half-way are removed."""
    db = tmp_path / "out" / "mlflow.db"
    db.parent.mkdir()
    leftover = db.parent / ".mlflow.db.12345.tmp"
    leftover.write_bytes(b"half a database")
    Tracker(f"sqlite:///{db}", "x", tmp_path / "artifacts")
    assert db.exists() and not leftover.exists()
    assert not list(db.parent.glob(".mlflow.db.*.tmp"))
