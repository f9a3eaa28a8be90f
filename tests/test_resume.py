"""Resume and skip logic against a real SQLite MLflow store, including killed processes."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import bench_process, suite_tracker

from bench.cli import main
from bench.plan import build_plan, load_suite
from bench.results import load_results
from bench.track import FINISHED, KILLED

_tracker = suite_tracker


def _finished_counts(suite: Path, kind: str | None = None) -> Counter:
    return Counter(r.key for r in _tracker(suite).runs(kind) if r.status == FINISHED)


def _summary(capsys) -> str:
    return [ln for ln in capsys.readouterr().out.splitlines() if "trial(s) run" in ln][-1]


def _metrics(suite: Path) -> dict[str, float]:
    plan = build_plan(load_suite(suite, env={}))
    df = load_results(plan, _tracker(suite))
    return {k: round(v, 6) for k, v in zip(df["trial_key"], df["accuracy"], strict=True)}


def test_rerun_skips_finished_and_redoes_failed(tiny_suite: Path, capsys) -> None:
    assert main(["run", str(tiny_suite)]) == 0
    assert "2 stage(s) trained, 0 already done; 8 trial(s) run, 0 already done" in _summary(capsys)
    # 'sup' serves two cells and the parent of 'bt': one stage run each in MLflow
    stage_runs = _tracker(tiny_suite).runs("stage")
    assert sorted(r.tags["bench.chain"] for r in stage_runs) == ["rnd+sup", "rnd+sup+bt"]
    first = _metrics(tiny_suite)
    # nothing left: nothing trains
    assert main(["run", str(tiny_suite)]) == 0
    assert "0 stage(s) trained, 2 already done; 0 trial(s) run, 8 already done" in _summary(capsys)
    # a trial recorded as FAILED (and one whose run was deleted) are run again, nothing else
    tracker = _tracker(tiny_suite)
    trials = [r for r in tracker.runs("trial") if r.status == FINISHED]
    tracker.client.set_terminated(trials[0].run_id, "FAILED")
    tracker.client.delete_run(trials[1].run_id)
    assert main(["run", str(tiny_suite)]) == 0
    assert "0 stage(s) trained, 2 already done; 2 trial(s) run, 6 already done" in _summary(capsys)
    counts = _finished_counts(tiny_suite)
    assert all(n == 1 for n in counts.values())
    assert _metrics(tiny_suite) == first  # the redone trials reproduce their metrics (CPU)


def test_more_seeds_run_only_the_new_trials(tiny_suite: Path, capsys) -> None:
    assert main(["run", str(tiny_suite)]) == 0
    capsys.readouterr()
    assert main(["run", str(tiny_suite), "--set", "seeds.count=3"]) == 0
    assert "0 stage(s) trained, 2 already done; 4 trial(s) run, 8 already done" in _summary(capsys)


def test_changed_stage_retrains_only_its_subtree(tiny_suite: Path, capsys) -> None:
    assert main(["run", str(tiny_suite)]) == 0
    capsys.readouterr()
    assert main(["run", str(tiny_suite), "--set", "stages.bt.epochs=2"]) == 0
    assert "1 stage(s) trained, 1 already done; 4 trial(s) run, 4 already done" in _summary(capsys)


def test_stale_running_run_is_marked_killed_and_redone(tiny_suite: Path, capsys) -> None:
    assert main(["run", str(tiny_suite)]) == 0
    capsys.readouterr()
    tracker = _tracker(tiny_suite)
    victim = tracker.runs("trial")[0]
    tracker.client.set_terminated(victim.run_id, "RUNNING")  # as a SIGKILLed process leaves it
    assert main(["run", str(tiny_suite)]) == 0
    out = capsys.readouterr().out
    assert "marked 1 interrupted run(s) KILLED" in out
    assert "1 trial(s) run, 7 already done" in out
    statuses = {r.run_id: r.status for r in _tracker(tiny_suite).runs("trial")}
    assert statuses[victim.run_id] == KILLED


def _bench(*args: str, cwd: Path) -> subprocess.Popen:
    return bench_process(*args, cwd=cwd)


def _wait_for(proc: subprocess.Popen, needle: str, timeout: float = 120) -> list[str]:
    seen = []
    end = time.time() + timeout
    assert proc.stdout is not None
    while time.time() < end:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"never saw {needle!r}: {''.join(seen)}")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT])  # SIGKILL: tests/test_concurrency.py
def test_killed_run_resumes_with_only_the_remaining_work(tiny_suite: Path, sig, capsys) -> None:
    proc = _bench("run", str(tiny_suite), cwd=tiny_suite.parent)
    _wait_for(proc, "[5/10, eta ")  # two stages and three trials are done
    proc.send_signal(sig)
    rc = proc.wait(timeout=60)
    assert rc == (-9 if sig == signal.SIGKILL else 130)
    assert sum(_finished_counts(tiny_suite, "stage").values()) == 2
    n_done = sum(_finished_counts(tiny_suite, "trial").values())
    assert n_done >= 3
    assert main(["run", str(tiny_suite)]) == 0
    summary = _summary(capsys)
    assert f"0 stage(s) trained, 2 already done; {8 - n_done} trial(s) run, {n_done} already" \
        in summary
    counts = _finished_counts(tiny_suite)
    assert len(_finished_counts(tiny_suite, "trial")) == 8
    assert all(n == 1 for n in counts.values()), counts
    # the same results as an uninterrupted run in another store
    other = tiny_suite.parent / "other"
    other.mkdir()
    clean = other / "tiny.yaml"
    clean.write_text(tiny_suite.read_text().replace(str(tiny_suite.parent / "out"),
                                                    str(other / "out")))
    assert main(["run", str(clean)]) == 0
    assert _metrics(clean) == _metrics(tiny_suite)


def test_headbank_cells_log_one_run_per_trial_with_predictions(tiny_suite: Path, capsys) -> None:
    import numpy as np
    from sklearn.metrics import f1_score

    assert main(["run", str(tiny_suite), "--set", "seeds.vary=[head]",
                 "--set", "seeds.count=3"]) == 0
    assert "12 trial(s) run" in _summary(capsys)
    tracker = _tracker(tiny_suite)
    lp = [r for r in tracker.runs("trial") if r.tags["bench.cell"].endswith("/lp")]
    assert len(lp) == 6 and all(r.status == FINISHED for r in lp)
    for r in lp[:2]:  # the saved predictions give the logged weighted F1
        path = tracker.artifact_path(r.run_id, "predictions.npz", tiny_suite.parent / "dl" / r.run_id)
        saved = np.load(path)
        assert saved["probs"].dtype == np.float16
        f1 = f1_score(saved["labels"], saved["pred"], average="weighted", zero_division=0)
        assert abs(f1 - r.metrics["test_f1_weighted"]) < 1e-9


def test_nan_trial_fails_with_its_reason_and_the_report_counts_it(tiny_suite: Path,
                                                                  capsys) -> None:
    sets = ["--set", "grid.protocols=[ft, lp]", "--set", "contrasts=[]",
            "--set", "grid.chains=[[]]", "--set", "protocols.ft.lr_search.lr=1e30"]
    assert main(["run", str(tiny_suite), *sets]) == 1  # some trials failed, the others ran
    captured = capsys.readouterr()
    assert "2 trial(s) run" in captured.out and "2 failed" in captured.out
    assert "NonFiniteLoss" in captured.err
    failed = [r for r in _tracker(tiny_suite).runs("trial") if r.status == "FAILED"]
    assert len(failed) == 2 and all("NonFiniteLoss" in r.tags["bench.failure"] for r in failed)
    rep = tiny_suite.parent / "rep"
    assert main(["report", str(tiny_suite), *sets, "--out", str(rep)]) == 0
    md = (rep / "report.md").read_text()
    assert "| rnd | — | 0 | 2 |" in md  # n = 0 finished, 2 failed
    assert "| rnd/ft | NonFiniteLoss" in md  # the failure reasons are listed
    assert "rnd/ft: 0 of 2 trials finished (2 failed or interrupted)" in md
