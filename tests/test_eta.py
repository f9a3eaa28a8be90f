"""The cost model (bench.plan.cost) and the ETA of `bench run` built on it: units weighted by what
they cost, seconds per unit of cost measured on the work this run finished."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import suite_plan

from bench.cli import main
from bench.plan.cost import FORWARD, PARTIAL, TRAIN, stage_cost, trial_cost, unit_costs
from bench.progress import Eta

DEMO = Path(__file__).resolve().parents[1] / "suites" / "demo.yaml"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_eta_is_seconds_per_finished_cost_times_the_cost_left() -> None:
    clock = Clock()
    eta = Eta(100.0, clock)
    assert eta.update(100.0) == "?"  # nothing finished yet
    clock.now = 10.0
    assert eta.update(80.0) == "0:00:40" and eta.seconds == pytest.approx(40.0)
    clock.now = 3600 + 10.0
    assert eta.update(1.0) == "0:00:36"  # 3610 s / 99 finished × 1 left
    assert eta.update(0.0) == "0:00:00"
    assert eta.update(-5.0) == "0:00:00" and eta.update(500.0) == "?"  # clipped to [0, total]
    # before anything finished in this run: the rate of the store's earlier units, if any
    primed = Eta(100.0, Clock(), prior=0.5)
    assert primed.update(100.0) == "0:00:50"


def test_the_eta_is_exact_when_durations_follow_the_cost_and_a_unit_count_is_not() -> None:
    """On the demo's plan, units that take time ∝ their cost: the weighted ETA at each unit's
    start is the true time left; counting units (what a plain bar does) is far off, because a
    stage costs hundreds of trials."""
    plan = suite_plan(DEMO)
    costs = unit_costs(plan)
    order = [s.key for s in plan.stages] + [t.key for t in plan.trials]
    assert set(order) == set(costs)
    seconds_per_cost = 2e-4
    clock = Clock()
    eta = Eta(sum(costs.values()), clock)
    left = sum(costs.values())
    worst_count_error = 0.0
    for i, key in enumerate(order):
        text = eta.update(left)
        if i:
            truth = left * seconds_per_cost
            assert eta.seconds == pytest.approx(truth, rel=1e-9), key
            by_count = clock.now / i * (len(order) - i)
            worst_count_error = max(worst_count_error, abs(by_count - truth) / truth)
        else:
            assert text == "?"
        clock.now += costs[key] * seconds_per_cost
        left -= costs[key]
    assert worst_count_error > 2  # the count-based ETA is off by more than 3× somewhere


def test_unit_costs_follow_the_protocol_and_stage_settings(capsys) -> None:
    # the weights `bench plan` states: a backward pass ≈ two forwards, a partial one a quarter
    assert (FORWARD, PARTIAL, TRAIN) == (1.0, 1.25, 3.0)
    assert main(["plan", str(DEMO)]) == 0
    assert "a training pass counts as 3)" in capsys.readouterr().out
    plan = suite_plan(DEMO)
    stages = {s.name: s for s in plan.stages}
    sl, ssl, issl = stages["SL"], stages["SSL"], stages["I_SSL"]
    n_src = len(plan.datasets["source"].part("train"))
    n_tr = len(plan.datasets["target"].part("train"))
    n_te = len(plan.datasets["target"].part("test"))
    spec = plan.suite.stages
    assert stage_cost(plan, sl) == n_src * spec["SL"].epochs * TRAIN  # one view, whole encoder
    assert stage_cost(plan, ssl) == 2 * n_src * spec["SSL"].epochs * TRAIN  # two views
    assert stage_cost(plan, issl) == 2 * n_tr * (spec["I_SSL"].warmup_epochs * PARTIAL
                                                 + spec["I_SSL"].epochs * TRAIN)
    cells = {c.protocol: c for c in plan.cells}
    ft, lp = plan.suite.protocols["fine_tune"], plan.suite.protocols["linear_probe"]
    assert trial_cost(plan, cells["fine_tune"]) == (
        n_tr * (ft.n_warmup * PARTIAL + ft.epochs * TRAIN) + n_te * ft.tta.passes * FORWARD)
    assert lp.cache_features and trial_cost(plan, cells["linear_probe"]) == (n_tr + n_te) * FORWARD
    # the settings move the cost: more epochs, a partial unfreeze, no feature cache
    more = suite_plan(DEMO, f"stages.SSL.epochs={2 * spec['SSL'].epochs}",
                      "stages.I_SSL.unfreeze=last_block",
                      "protocols.linear_probe.cache_features=false")
    m = {s.name: s for s in more.stages}
    assert stage_cost(more, m["SSL"]) == 2 * stage_cost(plan, ssl)
    assert stage_cost(more, m["I_SSL"]) == 2 * n_tr * (spec["I_SSL"].warmup_epochs
                                                       + spec["I_SSL"].epochs) * PARTIAL
    lp_more = next(c for c in more.cells if c.protocol == "linear_probe")
    assert trial_cost(more, lp_more) == n_tr * lp.epochs * PARTIAL + n_te * FORWARD
    knn = suite_plan(DEMO, "protocols.knn={kind: knn, train: 'target:train', test: "
                     "'target:test', image_size: 32}", "grid.protocols=[knn]", "contrasts=[]",
                     "controls=[]")
    assert trial_cost(knn, knn.cells[0]) == (n_tr + n_te) * FORWARD  # it trains nothing


def test_bench_run_prints_the_eta_on_every_unit_line(tiny_suite: Path, capsys,
                                                     monkeypatch) -> None:
    monkeypatch.setitem(os.environ, "BENCH_PLAIN", "1")
    assert main(["run", str(tiny_suite), "--set", "contrasts=[]"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[")]
    assert len(lines) == 2 + 8  # 2 stages, 8 trials
    assert lines[0].startswith("[1/10, eta ?] stage rnd+sup")
    for ln in lines[1:]:  # every later unit has an estimate
        head = ln.split("]")[0]
        assert head.split("eta ")[1].count(":") == 2, ln
    # more seeds later: the first new unit is estimated from the recorded ones
    assert main(["run", str(tiny_suite), "--set", "contrasts=[]", "--set", "seeds.count=3"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[")]
    assert len(lines) == 4 and lines[0].startswith("[1/4, eta 0:")
