"""Direct tests of small boxes: the scheduler on fake stores, the resolver, references, profiles,
splits, the leakage guard and the status table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import suite_plan

from bench.config.errors import SuiteError
from bench.execute.scheduler import Scheduler, Snapshot, needed_stages, search_key
from bench.track import FAILED, FINISHED, RUNNING, RunRecord, Tag

NOW = 10_000


def _rec(key: str, status: str, kind: str = "trial", end: int | None = NOW,
         **tags: str) -> RunRecord:
    return RunRecord(run_id=f"r-{key[:8]}-{status}", key=key, kind=kind, status=status,
                     tags=tags, params={}, metrics={}, start_time=NOW - 5, end_time=end)


def _scheduler(plan, snap: Snapshot):
    given: list[tuple[str, str]] = []
    pending = [t for t in plan.trials if not snap.done(t.key)]
    done = {k for k in snap.best if snap.done(k)}
    sched = Scheduler(plan, pending, needed_stages(plan, pending, done),
                      lambda label, reason: given.append((label, reason)))
    return sched, given


# ---------------------------------------------------------------- scheduler
def test_scheduler_walks_the_dag_in_order(tiny_suite: Path) -> None:
    plan = suite_plan(tiny_suite)
    sup, bt = plan.stages
    sched, given = _scheduler(plan, Snapshot({}, NOW))
    unit, waiting = sched.next_unit(Snapshot({}, NOW))
    assert (unit.kind, unit.stage.key, waiting) == ("stage", sup.key, False)
    # sup done: bt is next, before any trial
    snap = Snapshot({sup.key: _rec(sup.key, FINISHED, "stage")}, NOW)
    unit, _ = sched.next_unit(snap)
    assert unit.stage.key == bt.key
    # bt held by another worker: the trials of the sup cells go ahead, marked as waiting
    snap.best[bt.key] = _rec(bt.key, RUNNING, "stage", end=None)
    unit, waiting = sched.next_unit(snap)
    assert unit.kind == "trials" and unit.cell.name == "rnd+sup/ft" and waiting
    assert [t.seed for t in unit.trials] == [0, 1]
    assert not given


def test_scheduler_gives_up_below_a_stage_that_failed_in_this_run(tiny_suite: Path) -> None:
    plan = suite_plan(tiny_suite)
    sup = plan.stages[0]
    snap = Snapshot({sup.key: _rec(sup.key, FAILED, "stage")}, NOW - 1)
    sched, given = _scheduler(plan, snap)
    assert sched.next_unit(snap) == (None, False)
    assert ("stage rnd+sup+bt", "its parent stage failed") in given
    assert sum(reason == "stage failed" for _, reason in given) == len(plan.trials)
    # a failure from before this run is retried
    old = Snapshot({sup.key: _rec(sup.key, FAILED, "stage", end=NOW - 100)}, NOW)
    unit, _ = _scheduler(plan, old)[0].next_unit(old)
    assert unit.stage.key == sup.key


def test_scheduler_searches_a_cells_lr_before_its_trials(tiny_suite: Path) -> None:
    plan = suite_plan(tiny_suite, "protocols.ft.lr_search.method=lr_finder", "grid.chains=[[]]",
                      "contrasts=[]")
    cell = plan.cells[0]
    snap = Snapshot({}, NOW)
    sched, given = _scheduler(plan, snap)
    unit, _ = sched.next_unit(snap)
    assert (unit.kind, unit.cell.key) == ("search", cell.key)
    snap.best[search_key(cell)] = _rec(search_key(cell), FAILED, "search",
                                      **{Tag.FAILURE: "NonFiniteLoss: nan"})
    unit, _ = sched.next_unit(snap)
    assert unit.cell.name == "rnd/lp"  # the ft cell's trials are given up, the lp cell goes on
    assert given[0][1] == "lr search failed: NonFiniteLoss: nan"
    found = Snapshot({search_key(cell): _rec(search_key(cell), FINISHED, "search")}, NOW)
    found.best[search_key(cell)].metrics["cell_max_lr"] = 0.003  # type: ignore[index]
    assert found.cell_lr(cell) == 0.003


# ---------------------------------------------------------------- resolver, refs, profiles
def _load(path: Path, *overrides: str, profile: str | None = None):
    from bench.plan import load_suite

    return load_suite(path, list(overrides), env={}, profile=profile)


@pytest.mark.parametrize(("override", "message"), [
    ("inits.rnd.arch=resnet5", "inits.rnd.arch: unknown architecture 'resnet5'"),
    ("stages.bt.method=barlow", "stages.bt.method: unknown method 'barlow'"),
    ("stages.bt.params.lambda_offdiag=-1", "stages.bt.params.lambda_offdiag: Input should be"),
    ("datasets.tgt.format=isic;datasets.tgt.synthetic=null",
     "datasets.tgt.format: unknown format 'isic' (did you mean 'isic2019'?)"),
    ("datasets.tgt.format=csv;datasets.tgt.synthetic=null",
     "datasets.tgt.format: format 'csv' needs 'labels'"),
    ("stages.bt.lr_search.method=optuna", "stages.bt.lr_search: a pre-training stage has no"),
])
def test_registry_names_are_checked_when_the_suite_loads(tiny_suite: Path, override: str,
                                                         message: str) -> None:
    with pytest.raises(SuiteError) as info:
        _load(tiny_suite, *override.split(";"))
    assert message in str(info.value), str(info.value)


def test_references_are_checked_without_registries(tiny_suite: Path) -> None:
    from bench.config.refs import check_references

    suite = _load(tiny_suite).suite
    assert check_references(suite) == []
    bad = suite.model_copy(update={"contrasts": [suite.contrasts[0].model_copy(
        update={"b": "rnd+sup+bt/ft"})]})
    assert [p.message for p in check_references(bad)] == ["a contrast compares a cell with itself"]


def test_smoke_profile_reads_projector_sizes_from_each_methods_params(tiny_suite: Path) -> None:
    from bench.config.profiles import apply_profile
    from bench.plan import RESOLVER

    data = {"stages": {
        "bt": {"method": "barlow_twins"},                                  # default: 3 layers
        "sim": {"method": "simclr"},                                       # default: 2 layers
        "by": {"method": "byol", "params": {"predictor": {"dims": [9, 9, 9]}}},
        "sup": {"method": "supervised"},
    }}
    apply_profile(data, "smoke", RESOLVER.smoke_params)
    st = data["stages"]
    assert st["bt"]["params"]["projector"]["dims"] == [64, 64, 64]
    assert st["sim"]["params"]["projector"]["dims"] == [64, 64]
    assert st["by"]["params"] == {"projector": {"dims": [64, 64]},
                                  "predictor": {"dims": [64, 64, 64]}}
    assert "params" not in st["sup"] and st["sup"]["epochs"] == 1
    # --set wins over the profile
    loaded = _load(tiny_suite, "stages.bt.params.projector.dims=[8,8]", profile="smoke")
    assert loaded.suite.stages["bt"].params["projector"]["dims"] == [8, 8]


# ---------------------------------------------------------------- split, leakage, status
def test_split_counts_are_exact_and_groups_stay_whole() -> None:
    from bench.config.schema import SplitSpec
    from bench.data.split import assign_parts

    records = pd.DataFrame({"id": [f"i{i}" for i in range(40)],
                            "label": ["a"] * 20 + ["b"] * 20,
                            "group": [f"g{i // 2}" for i in range(40)]})
    parts = assign_parts(records, SplitSpec(counts={"train": {"a": 6, "b": 4}}, rest="test"))
    assert parts.value_counts().to_dict() == {"test": 30, "train": 10}
    assert (records.label[parts == "train"].value_counts().to_dict()) == {"a": 6, "b": 4}
    grouped = assign_parts(records, SplitSpec(fractions={"train": 0.5}, rest="test",
                                              grouped=True, seed=3))
    assert records.groupby("group").apply(lambda g: grouped[g.index].nunique()).max() == 1
    again = assign_parts(records, SplitSpec(fractions={"train": 0.5}, rest="test",
                                            grouped=True, seed=3))
    assert grouped.equals(again)


def test_leakage_guard_names_a_test_part_a_stage_trains_on(tiny_suite: Path) -> None:
    from bench.data.leakage import check_leakage

    clean = check_leakage(suite_plan(tiny_suite), None)
    assert clean.ok, clean.errors
    leaky = check_leakage(suite_plan(tiny_suite, "stages.bt.data=[tgt:test]"), None)
    assert not leaky.ok and any("tgt:test" in e for e in leaky.errors), leaky.errors


def test_status_table_counts_states_and_names_failures_and_owners(tiny_suite: Path) -> None:
    from bench.status import count_status, describe_status

    plan = suite_plan(tiny_suite)
    t0, t1, t2 = plan.trials[:3]
    status = {t0.key: _rec(t0.key, FINISHED),
              t1.key: _rec(t1.key, FAILED, **{Tag.FAILURE: "ValueError: boom"}),
              t2.key: _rec(t2.key, RUNNING, end=None, **{Tag.OWNER: "host:42:abc"})}
    counts = count_status(plan, status)
    assert (counts["FINISHED"], counts["FAILED"], counts["RUNNING"]) == (1, 1, 1)
    assert counts["pending"] == len(plan.trials) - 3
    text = describe_status(plan, status)
    assert "ValueError: boom" in text and "host:42:abc" in text and "dead" in text


def test_the_lr_search_seed_source_seeds_per_trial_optuna_studies(tiny_suite: Path) -> None:
    from bench.cli import main
    from bench.track import Tracker, default_tracking_uri

    args = ["--set", "grid.protocols=[lp]", "--set", "grid.chains=[[]]", "--set", "contrasts=[]",
            "--set", "protocols.lp.lr_search={method: optuna, per: trial, n_trials: 2, "
                     "budget_epochs: 1}"]
    candidates = {}
    for vary in ("[lr_search]", "[head]"):
        out = tiny_suite.parent / f"out-{vary[1:-1]}"
        assert main(["run", str(tiny_suite), "--quiet", "--output", str(out), *args,
                     "--set", f"seeds.vary={vary}"]) == 0
        tracker = Tracker(default_tracking_uri(out), "tiny", out / "artifacts")
        lrs = [tracker.client.get_metric_history(r.run_id, "optuna_lr")
               for r in tracker.runs("trial")]
        candidates[vary] = {tuple(m.value for m in sorted(h, key=lambda m: m.step))
                            for h in lrs}
    assert len(candidates["[lr_search]"]) == 2   # each trial's study draws its own candidates
    assert len(candidates["[head]"]) == 1        # not varied: the same study in both trials
    # one storage per suite, studies named after their cell (seed first), the cell as attributes
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    folder = tiny_suite.parent / "out-lr_search" / "optuna"
    assert [p.name for p in folder.iterdir()] == ["studies.journal"]
    storage = JournalStorage(JournalFileBackend(str(folder / "studies.journal")))
    studies = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    plan = suite_plan(tiny_suite, *args[1::2], "seeds.vary=[lr_search]")
    assert set(studies) == {f"s{t.seed:02d} · rnd/lp · {t.key[:8]}" for t in plan.trials}
    for summary in studies.values():
        assert summary.user_attrs == {"bench.suite": "tiny", "bench.cell": "rnd/lp",
                                      "bench.cell_key": plan.cells[0].key, "bench.replicate": ""}
    plain = suite_plan(tiny_suite, *args[1::2])
    cell_search = suite_plan(tiny_suite, *args[1::2][:-1], "protocols.lp.lr_search={method: "
                             "optuna, per: cell, n_trials: 2, budget_epochs: 1}")
    assert plain.cells[0].key != cell_search.cells[0].key


def test_a_unit_that_raises_outside_its_body_leaves_no_claim_behind(tiny_suite: Path,
                                                                     monkeypatch) -> None:
    """Whatever goes wrong after a claim, the run is ended: the worker never waits on itself."""
    import threading

    from conftest import suite_tracker

    from bench.cli import main
    from bench.progress import Progress

    real = Progress.unit

    def broken(self, label: str, total: int) -> None:
        if label.endswith("lr search"):
            raise RuntimeError("progress display broke")
        real(self, label, total)

    monkeypatch.setattr(Progress, "unit", broken)
    monkeypatch.setenv("BENCH_POLL_S", "0.05")
    rc: list[int] = []
    worker = threading.Thread(target=lambda: rc.append(main([
        "run", str(tiny_suite), "--quiet", "--set", "grid.chains=[[]]", "--set", "contrasts=[]",
        "--set", "protocols.ft.lr_search.method=lr_finder"])), daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert rc == [1], "the run waited on its own claim"
    runs = suite_tracker(tiny_suite).runs()
    assert not [r for r in runs if r.status == RUNNING and r.kind != "cell"]
    (search,) = [r for r in runs if r.kind == "search"]
    assert search.status == FAILED and "progress display broke" in search.tags[Tag.FAILURE]


def test_a_headbank_that_fails_midway_keeps_the_trials_it_finished(tiny_suite: Path,
                                                                    monkeypatch) -> None:
    from conftest import suite_tracker

    from bench.cli import main
    from bench.execute.artifacts import Artifacts

    real, calls = Artifacts.log_trial, []

    def second_fails(self, trial, run_id, result, classes) -> None:
        calls.append(trial.seed)
        if len(calls) == 2:
            raise OSError("disk full")
        real(self, trial, run_id, result, classes)

    monkeypatch.setattr(Artifacts, "log_trial", second_fails)
    assert main(["run", str(tiny_suite), "--quiet", "--set", "grid.chains=[[]]", "--set",
                 "grid.protocols=[lp]", "--set", "contrasts=[]", "--set", "seeds.vary=[head]",
                 "--set", "seeds.count=3"]) == 1
    states = sorted((int(r.tags[Tag.SEED]), r.status)
                    for r in suite_tracker(tiny_suite).runs("trial"))
    assert states == [(0, FINISHED), (1, FAILED), (2, FAILED)]


def test_the_optuna_profile_searches_every_protocols_lr_and_keeps_the_stages(
        tmp_path: Path) -> None:
    """``--profile optuna``: the demo with each cell's max lr chosen by an Optuna study (the
    profile's budget, the suite's range kept), same stages (a shared --output reuses them)."""
    from bench.config.profiles import OPTUNA_SEARCH
    from bench.plan import build_plan, load_suite

    demo = Path(__file__).resolve().parents[1] / "suites" / "demo.yaml"
    plain = build_plan(load_suite(demo, env={}))
    text = demo.read_text()
    assert text.count("lr_search: {method: fixed, lr: 0.002}") == 1  # fine_tune's
    ranged = tmp_path / "demo.yaml"
    ranged.write_text(text.replace("lr_search: {method: fixed, lr: 0.002}",
                                   "lr_search: {method: fixed, lr: 0.002, low: 0.0002}"))
    tuned = build_plan(load_suite(ranged, env={}, profile="optuna"))
    assert tuned.suite.output == "runs/demo-optuna"
    # the budget the README promises: 8 candidates of 2 epochs per cell
    assert (OPTUNA_SEARCH["n_trials"], OPTUNA_SEARCH["budget_epochs"]) == (8, 2)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "an Optuna study per\ncell, 8 candidates of 2 epochs" in readme
    for name, spec in tuned.suite.protocols.items():
        search = spec.lr_search
        assert (search.method, search.per, search.n_trials, search.budget_epochs) == tuple(
            OPTUNA_SEARCH[k] for k in ("method", "per", "n_trials", "budget_epochs")), name
    assert tuned.suite.protocols["fine_tune"].lr_search.low == 0.0002  # the suite's own range
    assert [s.key for s in tuned.stages] == [s.key for s in plain.stages]
    assert {c.key for c in tuned.cells}.isdisjoint(c.key for c in plain.cells)
