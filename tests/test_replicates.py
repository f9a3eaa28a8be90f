"""Stage replicates end to end: the plan, keys that reuse finished work, tags, predictions with
case ids, and a report whose verdicts rest on pre-training runs and on test cases."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import single_runs
from bench.cli import main
from bench.plan import build_plan, load_suite
from bench.seeds import replicate_seed
from bench.track import Tracker, default_tracking_uri

REPS = ["--set", "stages.bt.replicates=2"]


def test_replicates_expand_the_plan_and_keep_replicate_zero_keys(tiny_suite) -> None:
    one = build_plan(load_suite(tiny_suite))
    two = build_plan(load_suite(tiny_suite, [REPS[1]]))
    assert [s.display for s in two.stages] == ["rnd+sup", "rnd+sup+bt [r0]", "rnd+sup+bt [r1]"]
    r0, r1 = two.stages[1], two.stages[2]
    assert r0.key == one.stages[1].key and r1.key != r0.key  # replicate 0 is the old stage
    assert (r0.spec.seed, r1.spec.seed) == (0, replicate_seed(0, 1)) and r1.spec.seed != 0
    assert len(two.trials) == len(one.trials) + 4  # 2 seeds × 2 protocols on the new encoder
    assert {t.key for t in one.trials} < {t.key for t in two.trials}
    assert two.cell_names() == one.cell_names()
    assert [c.unit for c in two.replicates_of("rnd+sup+bt/ft")] == ["0", "1"]
    # nested replicates: every replicate of a parent gets its own children
    four = build_plan(load_suite(tiny_suite, [REPS[1], "stages.sup.replicates=2"]))
    bt = [s for s in four.stages if s.name == "bt"]
    assert [s.replicate for s in bt] == ["0.0", "0.1", "1.0", "1.1"]
    assert len({s.parent_key for s in bt}) == 2
    assert {c.unit for c in four.replicates_of("rnd+sup+bt/lp")} == {"0", "1"}
    # every path through the replicated stages is its own run: under parent 0 the seeds (and
    # keys) are those of the unreplicated parent's children; under parent 1 all are new
    seeds = {s.replicate: s.spec.seed for s in bt}
    assert (seeds["0.0"], seeds["0.1"]) == (r0.spec.seed, r1.spec.seed)
    assert len(set(seeds.values())) == 4
    assert [bt[0].key, bt[1].key] == [r0.key, r1.key]
    # a stage once per parent replicate is a run per path, not one checkpoint
    once = build_plan(load_suite(tiny_suite, ["stages.sup.replicates=3"]))
    bt_once = [s for s in once.stages if s.name == "bt"]
    assert [s.replicate for s in bt_once] == ["0", "1", "2"]
    assert len({s.spec.seed for s in bt_once}) == 3 and bt_once[0].spec.seed == 0
    assert single_runs(once, "rnd+sup+bt/ft", "rnd+sup/ft") == []
    assert single_runs(one, "rnd+sup+bt/ft", "rnd+sup/ft") == ["rnd+sup+bt"]


def test_replicated_suite_runs_and_reports_three_kinds_of_evidence(tiny_suite, capsys) -> None:
    out = tiny_suite.parent / "out"
    assert main(["run", str(tiny_suite), "-q"]) == 0
    capsys.readouterr()
    assert main(["run", str(tiny_suite), *REPS, "-q"]) == 0  # only the new replicate runs
    assert "1 stage(s) trained, 2 already done; 4 trial(s) run, 8 already done" \
        in capsys.readouterr().out
    assert main(["plan", str(tiny_suite), *REPS]) == 0
    text = capsys.readouterr().out
    assert "replicated stages: bt ×2" in text and "rnd+sup+bt/ft [r1]" in text
    assert "finished: 12/12 trials, 3/3 stages" in text

    tracker = Tracker(default_tracking_uri(out), "tiny", out / "artifacts")
    runs = tracker.runs()
    stage_reps = sorted(r.tags.get("bench.replicate", "") for r in runs if r.kind == "stage")
    assert stage_reps == ["", "", "1"]  # replicate 0 is the stage run before replicates
    new_trials = [r for r in runs if r.kind == "trial" and r.tags.get("bench.replicate") == "1"]
    assert len(new_trials) == 4 and all("[r1]" in r.tags["mlflow.runName"] for r in new_trials)
    npz = np.load(tracker.artifact_path(new_trials[0].run_id, "predictions.npz",
                                        tiny_suite.parent / "dl"))
    plan = build_plan(load_suite(tiny_suite, [REPS[1]]))
    test = plan.datasets["tgt"].part("test")
    assert npz["ids"].tolist() == test["id"].astype(str).tolist()
    assert npz["groups"].tolist() == test["group"].astype(str).tolist()

    rep = tiny_suite.parent / "rep"
    assert main(["report", str(tiny_suite), *REPS, "--out", str(rep), "--format", "markdown",
                 "--format", "html", "--format", "csv"]) == 0
    md = (rep / "report.md").read_text()
    assert "## Pre-training replicates" in md
    assert "| rnd+sup+bt/ft | 2 | accuracy |" in md  # replicate means, ICC, effective n
    line = next(x for x in md.splitlines() if x.startswith("| rnd+sup+bt/ft | rnd+sup/ft | "
                                                           "accuracy |"))
    assert "| replicates | 2/2 |" in line
    assert "### For new patients (case-level evidence)" in md
    assert "| rnd+sup+bt/ft | rnd+sup/ft | accuracy | 36 (36) |" in md
    assert "tested on the replicate means" in md and "paired bootstrap over the test" in md
    assert "(2000 resamples, the same for both" in md  # B = 2,000 by default
    html = (rep / "report.html").read_text()
    assert "Pre-training replicates" in html and "For new patients" in html
    calibration = html[html.index("<h2>Calibration</h2>"):html.index("<h2>Contrasts")]
    assert "<svg" in calibration and "ECE " in calibration and "4 × 36" in calibration
    trials = pd.read_csv(rep / "trials.csv", dtype={"replicate": str, "unit": str})
    assert trials["ece"].between(0, 1).all() and trials["brier"].between(0, 2).all()
    assert (trials["nll"] > 0).all()
    bt = trials[trials["cell"] == "rnd+sup+bt/ft"]
    assert sorted(bt["replicate"]) == ["0", "0", "1", "1"]
    con = pd.read_csv(rep / "contrasts.csv")
    row = con[con["metric"] == "accuracy"].iloc[0]
    assert row["evidence"] == "replicates" and row["case_groups"] == 36
    assert np.isfinite(row["case_ci_low"]) and np.isfinite(row["case_ci_high"])
    cells = pd.read_csv(rep / "cells.csv")
    rbt = cells[(cells["cell"] == "rnd+sup+bt/ft") & (cells["metric"] == "accuracy")].iloc[0]
    assert rbt["pretraining"] == "replicated" and rbt["replicates"] == 2
    assert 0 <= rbt["icc"] <= 1 and rbt["effective_n"] <= 4
    # a calibration metric is reported like any other, with its own verdicts
    assert main(["report", str(tiny_suite), *REPS, "--out", str(rep / "ece"), "--metric",
                 "ece", "--metric", "nll", "--format", "csv"]) == 0
    ece = pd.read_csv(rep / "ece" / "contrasts.csv")
    assert set(ece["metric"]) == {"ece", "nll"} and len(ece) == 2 * (len(con) // 2)

    # predictions written before case ids were stored are matched to the current manifest
    # when the run recorded that manifest, and left out (with a note) otherwise
    from bench.results import load_predictions, load_results

    results = load_results(plan, tracker)
    key = new_trials[0].tags["bench.key"]
    record = next(r for r in tracker.runs(key=key))
    path = tracker.local_artifact(record, "predictions.npz")
    old = {k: v for k, v in np.load(path).items() if k not in ("ids", "groups")}
    np.savez_compressed(path, **old)
    preds, notes = load_predictions(plan, tracker, results, ["rnd+sup+bt/ft"])
    assert preds[key].ids.tolist() == test["id"].astype(str).tolist() and not notes
    tracker.set_tags(record.run_id, {"bench.manifest.tgt:test": "another"})
    preds, notes = load_predictions(plan, tracker, results, ["rnd+sup+bt/ft"])
    assert key not in preds and len(preds) == 3 and "without usable predictions" in notes[0]
