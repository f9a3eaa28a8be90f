"""Across datasets: rliable's aggregates against scipy and independent implementations, and
`bench compare` on two suites."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_SUITE
from scipy import stats

from bench.cli import main
from bench.stats.aggregate import (
    iqm,
    mean_ranks,
    min_max_normalise,
    pooled_iqm,
    prob_improvement,
    stratified_bootstrap,
)


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    assert iqm(x) == pytest.approx(np.sort(x)[10:30].mean(), abs=1e-12)  # n divisible by 4
    for n in (7, 13, 35):
        y = rng.normal(size=n)
        assert iqm(y) == pytest.approx(stats.trim_mean(y, 0.25), abs=1e-12)
    assert pooled_iqm([x[:15], x[15:]]) == pytest.approx(iqm(x), abs=1e-12)


def test_probability_of_improvement_counts_pairs_per_task() -> None:
    rng = np.random.default_rng(1)
    x = [rng.normal(0.5, 1, 6), np.array([1.0, 2.0, 2.0])]
    y = [rng.normal(0.0, 1, 9), np.array([2.0, 0.0])]
    want = []
    for a, b in zip(x, y, strict=True):  # every pair of runs, ties half
        wins = sum((u > v) + 0.5 * (u == v) for u in a for v in b)
        want.append(wins / (len(a) * len(b)))
    assert prob_improvement(x, y) == pytest.approx(np.mean(want), abs=1e-12)
    assert prob_improvement(x, y) + prob_improvement(y, x) == pytest.approx(1.0)


def test_one_task_bootstrap_agrees_with_scipy() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0.7, 0.05, 40)
    point, low, high = stratified_bootstrap(pooled_iqm, [[x]], resamples=5000, seed=3)
    ref = stats.bootstrap((x,), lambda v, axis: stats.trim_mean(v, 0.25, axis=axis),
                          method="percentile", n_resamples=5000, random_state=4)
    assert point == pytest.approx(iqm(x))
    width = high - low
    assert low == pytest.approx(ref.confidence_interval.low, abs=0.05 * width)
    assert high == pytest.approx(ref.confidence_interval.high, abs=0.05 * width)


def test_stratified_bootstrap_agrees_with_an_independent_resampling() -> None:
    """Three tasks with different numbers of runs: runs are resampled within each task (a
    pooled resampling would let one task's runs stand in for another's)."""
    rng = np.random.default_rng(5)
    x = [rng.normal(m, 0.05, n) for m, n in ((0.2, 10), (0.5, 6), (0.9, 15))]
    y = [rng.normal(m, 0.05, n) for m, n in ((0.25, 8), (0.45, 12), (0.9, 5))]
    own = np.random.default_rng(6)
    iqms, pois = [], []
    for _ in range(5000):
        rx = [own.choice(t, size=len(t), replace=True) for t in x]
        ry = [own.choice(t, size=len(t), replace=True) for t in y]
        iqms.append(stats.trim_mean(np.concatenate(rx), 0.25))
        pois.append(np.mean([np.mean(a[:, None] > b[None, :]) for a, b in zip(rx, ry,
                                                                              strict=True)]))
    for stat, groups, values in ((pooled_iqm, [x], iqms), (prob_improvement, [x, y], pois)):
        _, low, high = stratified_bootstrap(stat, groups, resamples=5000, seed=7)
        want_low, want_high = np.quantile(values, [0.025, 0.975])
        assert low == pytest.approx(want_low, abs=0.05 * (want_high - want_low))
        assert high == pytest.approx(want_high, abs=0.05 * (want_high - want_low))


def test_ranks_and_normalisation_know_which_way_is_better() -> None:
    means = {"t1": {"a": 0.9, "b": 0.8, "c": 0.8}, "t2": {"a": 0.5, "b": 0.7, "c": 0.6}}
    assert mean_ranks(means) == {"a": 2.0, "b": 1.75, "c": 2.25}
    assert mean_ranks(means, larger_is_better=False) == {"a": 2.0, "b": 2.25, "c": 1.75}
    tasks = {"t": {"a": np.array([0.1, 0.3]), "b": np.array([0.2, 0.5])}}
    up, down = min_max_normalise(tasks), min_max_normalise(tasks, larger_is_better=False)
    np.testing.assert_allclose(up["t"]["a"], [0.0, 0.5])
    np.testing.assert_allclose(down["t"]["b"], [0.75, 0.0])
    flat = min_max_normalise({"t": {"a": np.array([0.4]), "b": np.array([0.4])}})
    assert flat["t"]["a"].tolist() == [0.5]


def _suite(folder: Path, name: str, seed: int) -> Path:
    text = TINY_SUITE.format(output=folder / f"out-{name}").replace("name: tiny",
                                                                     f"name: {name}")
    text = text.replace("imbalance: 0.5, seed: 5", f"imbalance: 0.5, seed: {seed}")
    text = text.replace("protocols: [ft, lp]", "protocols: [lp]").replace(
        "seeds: {count: 2}", "seeds: {count: 4}").replace(
        "contrasts:\n  - {a: rnd+sup+bt/ft, b: rnd+sup/ft}",
        "contrasts:\n  - {a: rnd+sup+bt/lp, b: rnd+sup/lp}")
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_bench_compare_reports_two_suites_side_by_side(tmp_path: Path) -> None:
    suites = [_suite(tmp_path, "taska", 5), _suite(tmp_path, "taskb", 9)]
    for s in suites:
        assert main(["run", str(s), "-q"]) == 0
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, suites), "--report-dir", str(out), "--format",
                 "markdown", "--format", "csv", "--format", "html", "--format", "latex",
                 "--metric", "accuracy", "--metric", "ece"]) == 0
    table = pd.read_csv(out / "comparison.csv")
    assert set(table["encoder"]) == {"rnd+sup", "rnd+sup+bt"} and set(table["protocol"]) == {
        "lp"}
    acc = table[table["metric"] == "accuracy"].set_index("encoder")
    ranks = {t: stats.rankdata(-acc[f"{t}_mean"].to_numpy()) for t in ("taska", "taskb")}
    assert acc["mean_rank"].tolist() == pytest.approx(list((ranks["taska"]
                                                            + ranks["taskb"]) / 2))
    assert (acc["iqm_low"] <= acc["iqm"]).all() and (acc["iqm"] <= acc["iqm_high"]).all()
    assert set(acc["taska_units"]) == {4}
    pairs = pd.read_csv(out / "improvement.csv")
    assert len(pairs) == 2 and pairs["p_a_better"].between(0, 1).all()
    md = (out / "comparison.md").read_text()
    assert "## accuracy, lp" in md and "## ece, lp" in md
    assert "| rnd+sup+bt vs rnd+sup |" in md  # each suite's own verdict, side by side
    assert "<h2>accuracy, lp</h2>" in (out / "comparison.html").read_text()
    assert (out / "comparison.tex").read_text().startswith("% bench comparison")
    assert main(["compare", str(suites[0])]) == 2  # one suite compares nothing
