"""What a verdict covers: pre-training replicates vs trial seeds (simulation), declared margins,
degenerate and opposite contrasts, Holm's family size and the partial orders."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from bench.analysis.cells import Arm
from bench.analysis.orders import PartialOrder, partial_orders
from bench.analysis.verdicts import ContrastRow, decide, evaluate
from bench.stats import Moments, holm, welch, welch_power
from bench.stats.replicates import clustering


def _arm(values: np.ndarray, units: np.ndarray | None = None) -> Arm:
    units = np.full(len(values), "") if units is None else units
    keys = [(str(u), i) for i, u in enumerate(units)]
    return Arm(np.asarray(values, float), np.asarray(units, str), keys, units[0] != "")


def _cell(rng: np.random.Generator, k: int, n: int, sd_pre: float, sd_seed: float) -> Arm:
    """k pre-training replicates × n seeds of one (null) method."""
    effects = rng.normal(0.0, sd_pre, k)
    values = (effects[:, None] + rng.normal(0.0, sd_seed, (k, n))).ravel()
    units = np.repeat([str(i) for i in range(k)], n) if k > 1 else None
    return _arm(0.7 + values, units)


def _false_positive_rate(k: int, n: int, sd_pre: float, sims: int = 2000, seed: int = 0
                         ) -> tuple[float, str]:
    rng = np.random.default_rng(seed)
    hits, evidence = 0, ""
    for _ in range(sims):
        a, b = _cell(rng, k, n, sd_pre, 0.01), _cell(rng, k, n, sd_pre, 0.01)
        # two further pre-training methods: each cell's stage was pre-trained k times
        row = evaluate("A", "B", "accuracy", a, b, "two-sided", None,
                       [] if k > 1 else ["tiny+A", "tiny+B"])
        decide([row], 0.05)
        hits += row.significant
        evidence = row.evidence
    return hits / sims, evidence


def test_one_pretraining_run_makes_the_per_trial_test_lie() -> None:
    # A/A: pre-training varies as much as fine-tuning does (SD 0.01 each)
    naive, ev_naive = _false_positive_rate(k=1, n=35, sd_pre=0.01, sims=500)
    # 1 replicate × 35 seeds: P(|Δ| > t·SE) ≈ 0.74 in theory (Δ has SD 0.0143, SE 0.0024)
    assert ev_naive == "seeds" and naive > 0.6
    rep, ev_rep = _false_positive_rate(k=5, n=7, sd_pre=0.01)
    assert ev_rep == "replicates" and 0.03 <= rep <= 0.07
    # without pre-training variance both are nominal
    naive0, _ = _false_positive_rate(k=1, n=35, sd_pre=0.0, seed=1)
    rep0, _ = _false_positive_rate(k=5, n=7, sd_pre=0.0, seed=2)
    assert 0.03 <= naive0 <= 0.07 and 0.03 <= rep0 <= 0.07


def test_a_single_run_verdict_says_so() -> None:
    rng = np.random.default_rng(0)
    a, b = _arm(rng.normal(0.72, 0.01, 35)), _arm(rng.normal(0.70, 0.01, 35))
    row = evaluate("SL+I/ft", "SSL+I/ft", "accuracy", a, b, "two-sided", None, ["SL+I", "SSL+I"])
    decide([row], 0.05)
    assert row.verdict == "A ≻ B" and row.shown_verdict == "A ≻ B (1 pre-training run)"
    assert row.evidence == "seeds"


def test_replicate_level_test_is_welch_on_replicate_means() -> None:
    rng = np.random.default_rng(1)
    a = _cell(rng, 4, 6, 0.02, 0.01)
    b = _arm(rng.normal(0.69, 0.01, 10))  # the initialisation as given: its trials are units
    row = evaluate("A", "B", "accuracy", a, b, "greater", None, [])
    means = a.values.reshape(4, 6).mean(1)
    ref = stats.ttest_ind(means, b.values, equal_var=False, alternative="greater")
    assert row.evidence == "replicates" and (row.units_a, row.units_b) == (4, 10)
    assert row.primary.p == pytest.approx(ref.pvalue, abs=1e-12)
    assert row.test.p == pytest.approx(welch(a.values, b.values, "greater").p, abs=1e-12)
    # ICC and effective n of the nested trials, by the one-way ANOVA formulas
    c = clustering(a.values, a.units)
    x = a.values.reshape(4, 6)
    msb = 6 * np.sum((x.mean(1) - x.mean()) ** 2) / 3
    msw = np.sum((x - x.mean(1, keepdims=True)) ** 2) / (24 - 4)
    var_b = max(0.0, (msb - msw) / 6)
    assert c.icc == pytest.approx(var_b / (var_b + msw), abs=1e-12)
    assert c.effective_n == pytest.approx(24 / (1 + 5 * c.icc), abs=1e-12)


def test_no_margin_no_equivalence_and_the_papers_contrast() -> None:
    # SL + I (SSLp) vs SSL + I (SSLp), the paper's numbers: Welch p = 0.071
    a, b = Moments(0.70065, 0.01246, 35), Moments(0.69583, 0.00925, 35)
    rng = np.random.default_rng(0)

    def exact(m: Moments) -> np.ndarray:
        z = rng.standard_normal(m.n)
        return m.mean + m.sd * (z - z.mean()) / z.std(ddof=1)

    va, vb = _arm(exact(a)), _arm(exact(b))
    plain = evaluate("A", "B", "accuracy", va, vb, "two-sided", None, [])
    declared = evaluate("A", "B", "accuracy", va, vb, "two-sided", 0.01, [])
    decide([plain], 0.05)
    decide([declared], 0.05)
    assert f"{plain.primary.p:.2g}" == "0.071"
    assert plain.verdict == "inconclusive" and math.isnan(plain.tost_p)
    assert declared.tost_p == pytest.approx(0.026, abs=5e-4) and declared.verdict == "A ≈ B"


def test_degenerate_contrasts_are_named_not_tested() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning may leak out
        equal = evaluate("A", "B", "accuracy", _arm(np.full(5, 0.5)), _arm(np.full(5, 0.5)),
                         "two-sided", 0.01, [])
        apart = evaluate("A", "B", "accuracy", _arm(np.full(5, 0.6)), _arm(np.full(4, 0.5)),
                         "greater", None, [])
        decide([equal, apart], 0.05)
    for row, delta in ((equal, 0.0), (apart, 0.1)):
        assert row.verdict == "degenerate" and row.primary.degenerate
        assert row.primary.delta == pytest.approx(delta)
        assert all(math.isnan(x) for x in (row.primary.t, row.primary.p, row.primary.ci_low,
                                           row.mde, row.tost_p))
        assert "constant" in row.degenerate
    # one constant arm is not degenerate: Welch has the other arm's variance
    one = evaluate("A", "B", "accuracy", _arm(np.full(5, 0.5)), _arm([0.4, 0.45, 0.5, 0.42]),
                   "two-sided", None, [])
    assert not one.degenerate and math.isfinite(one.primary.p)


def test_holm_counts_every_declared_contrast() -> None:
    p = [0.01, float("nan"), 0.02, float("nan"), 0.004, float("nan")]
    adj = holm(p)
    from statsmodels.stats.multitest import multipletests

    ref = multipletests([x if x == x else 1.0 for x in p], method="holm")[1]
    assert [a for a in adj if a == a] == pytest.approx([ref[0], ref[2], ref[4]], abs=1e-12)
    assert adj[4] == pytest.approx(0.004 * 6)  # m = 6, not 3
    assert all(math.isnan(adj[i]) for i in (1, 3, 5))


def test_opposite_direction_is_flagged() -> None:
    rng = np.random.default_rng(4)
    a, b = _arm(rng.normal(0.77, 0.01, 10)), _arm(rng.normal(0.91, 0.01, 10))
    row = evaluate("SSL", "SL", "accuracy", a, b, "greater", None, [])
    decide([row], 0.05)
    assert row.verdict == "inconclusive" and row.opposite and row.p_opposite < 1e-10
    same = evaluate("SSL", "SL", "accuracy", b, a, "greater", None, [])
    decide([same], 0.05)
    assert same.verdict == "A ≻ B" and not same.opposite
    order = partial_orders([row], ["accuracy"], ["p"], {"p": ["SSL", "SL"]})[0]
    assert order.opposite == [("SL", "SSL")] and order.better == []


def test_mde_has_its_power_at_the_holm_level_of_its_family() -> None:
    rng = np.random.default_rng(5)
    rows = [evaluate(f"A{i}", "B", "accuracy", _arm(rng.normal(0, 1, 35)),
                     _arm(rng.normal(0, 2, 10)), "two-sided", None, [], family="f")
            for i in range(8)]
    decide(rows, 0.05)
    for r in rows:
        a, b = r.unit_moments
        assert r.mde_alpha == pytest.approx(0.05 / 8)
        assert welch_power(r.mde, a, b, 0.05 / 8) == pytest.approx(0.8, abs=1e-6)


def _row(a: str, b: str, verdict: str, family: str = "f") -> ContrastRow:
    row = evaluate(a, b, "accuracy", _arm([0.1, 0.2]), _arm([0.1, 0.3]), "two-sided", None, [],
                   family=family)
    row.verdict = verdict
    return row


def test_partial_order_uses_tested_pairs_once() -> None:
    rows = [_row("a", "b", "A ≻ B"), _row("a", "b", "A ≻ B", family="g"),
            _row("b", "c", "A ≻ B"), _row("a", "c", "inconclusive")]
    order = partial_orders(rows, ["accuracy"], ["p"], {"p": ["a", "b", "c"]})[0]
    assert order.better == [("a", "b"), ("b", "c")]  # the pair of two families: one relation
    assert order.hasse() == [("a", "b"), ("b", "c")]
    assert order.conflicts == [("a", "c")]  # a path suggests a ≻ c; its own test did not
    # an established a ≻ c shown by a path is redundant in the diagram, and no conflict
    rows[-1].verdict = "A ≻ B"
    order = partial_orders(rows, ["accuracy"], ["p"], {"p": ["a", "b", "c"]})[0]
    assert order.hasse() == [("a", "b"), ("b", "c")] and order.conflicts == []
    plain = PartialOrder("accuracy", "p", ["a", "b", "c"], [("a", "b"), ("b", "c"), ("a", "c")],
                         [], [])
    assert plain.hasse() == [("a", "b"), ("b", "c")]


def test_non_finite_values_are_counted_and_never_used(tmp_path) -> None:
    import pandas as pd

    from bench.analysis import analyse
    from bench.plan import build_plan, load_suite

    suite = tmp_path / "s.yaml"
    suite.write_text("""\
name: nan
datasets:
  d: {format: synthetic, synthetic: {n_images: 24, image_size: 8},
      split: {fractions: {train: 0.5, test: 0.5}}}
inits: {A: {arch: tiny_resnet_w8, seed: 1}, B: {arch: tiny_resnet_w8, seed: 2}}
protocols: {ft: {kind: fine_tune, train: d:train, test: d:test, epochs: 1}}
grid: {inits: [A, B], protocols: [ft]}
seeds: {count: 4}
report: {metrics: [accuracy]}
contrasts: [{a: A/ft, b: B/ft}]
""")
    plan = build_plan(load_suite(suite, env={}))
    vals = {"A/ft": [0.5, math.nan, math.inf, 0.6], "B/ft": [0.40, 0.45, 0.5, 0.42]}
    rows = [{"cell": c, "replicate": "", "unit": "", "seed": i, "status": "FINISHED",
             "failure": "", "accuracy": v} for c, vs in vals.items() for i, v in enumerate(vs)]
    a = analyse(plan, pd.DataFrame(rows))
    cell = next(c for c in a.cells if c.cell == "A/ft")
    assert (cell.n, cell.metrics["accuracy"].n, cell.dropped["accuracy"]) == (4, 2, 2)
    assert any("2 finished trial(s) have no finite accuracy" in w for w in a.warnings)
    row = a.contrasts[0]
    assert (row.n_a, row.n_b, row.dropped_a) == (2, 4, 2)
    assert row.test.p == pytest.approx(stats.ttest_ind([0.5, 0.6], vals["B/ft"],
                                                       equal_var=False).pvalue, rel=1e-12)
    expected = welch_power(row.mde, Moments.of([0.5, 0.6]), Moments.of(vals["B/ft"]), 0.05)
    assert expected == pytest.approx(0.8, abs=1e-9)  # the MDE uses n = 2, not 4
