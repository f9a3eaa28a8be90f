"""Sequential seeds: group-sequential boundaries against an independent multivariate-normal
integration and the published Lan–DeMets values, the design's level, power and TOST level by
simulation of Welch tests, and the looks of a suite (who stops when, what the report shows).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_SUITE, suite_plan
from scipy import special, stats

from bench.analysis import analyse
from bench.analysis.sequential import design_of, run_looks
from bench.stats.power import min_detectable_effect
from bench.stats.sequential import (
    boundaries,
    conditional_power,
    nominal_levels,
    repeated_ci,
    repeated_p,
    spent,
)
from bench.stats.twosample import Moments
from bench.track import FINISHED

LOOKS = (10, 20, 35)
FRACTIONS = tuple(n / 35 for n in LOOKS)


def _crossing_probabilities(c: np.ndarray, t: np.ndarray, sides: int) -> np.ndarray:
    """P(first crossing at look k) under the null by scipy's multivariate normal CDF of
    (Z_1 … Z_k), Corr = √(t_i / t_j): an integration independent of bench's recursion."""
    out = []
    for k in range(len(t)):
        cov = np.sqrt(np.minimum.outer(t[:k + 1], t[:k + 1]) / np.maximum.outer(t[:k + 1],
                                                                                  t[:k + 1]))
        mvn = stats.multivariate_normal(np.zeros(k + 1), cov, allow_singular=False)
        lo = -c[:k + 1] if sides == 2 else np.full(k + 1, -np.inf)
        cont = float(mvn.cdf(c[:k + 1], lower_limit=lo, rng=np.random.default_rng(0)))
        out.append(cont)
    cont = np.array([1.0, *out])
    return cont[:-1] - cont[1:]


@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
@pytest.mark.parametrize("sides,alpha", [(1, 0.025), (2, 0.05)])
def test_boundaries_spend_alpha_as_the_spending_function_says(spending: str, sides: int,
                                                              alpha: float) -> None:
    t = np.array(FRACTIONS)
    c = boundaries(FRACTIONS, alpha, spending, sides)
    increments = np.diff(np.concatenate([[0.0], spent(t, alpha / sides, spending) * sides]))
    np.testing.assert_allclose(_crossing_probabilities(c, t, sides), increments, atol=2e-5)
    assert spent(1.0, alpha, spending) == pytest.approx(alpha, abs=1e-15)


def test_boundaries_equal_the_published_lan_demets_values() -> None:
    """gsDesign ``sfLDOF``, one-sided α = 0.025 (Jennison & Turnbull table 7.6)."""
    np.testing.assert_allclose(boundaries((1 / 3, 2 / 3, 1), 0.025), [3.7103, 2.5114, 1.9930],
                               atol=1e-4)
    np.testing.assert_allclose(boundaries((0.5, 1), 0.025), [2.9626, 1.9686], atol=1e-4)
    assert boundaries((1.0,), 0.05, sides=2)[0] == pytest.approx(special.ndtri(0.975),
                                                                 abs=1e-9)


def test_repeated_p_is_the_smallest_level_that_rejects() -> None:
    rng = np.random.default_rng(1)
    for _ in range(40):
        p, look = 10 ** rng.uniform(-7, -0.5), int(rng.integers(3))
        rp = repeated_p(p, look, FRACTIONS, "obrien_fleming", 2)
        if rp >= 1:
            continue
        assert nominal_levels(FRACTIONS, rp * 1.002, sides=2)[look] >= p
        assert nominal_levels(FRACTIONS, rp / 1.002, sides=2)[look] <= p
    assert repeated_p(math.nan, 0, FRACTIONS) != repeated_p(math.nan, 0, FRACTIONS)  # NaN


def _welch_p(a: np.ndarray, b: np.ndarray, alternative: str = "two-sided") -> tuple:
    """Welch's test over the last axis (rows are contrasts): p, Δ, SE, df."""
    na, nb = a.shape[-1], b.shape[-1]
    va, vb = a.var(-1, ddof=1) / na, b.var(-1, ddof=1) / nb
    se = np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    d = a.mean(-1) - b.mean(-1)
    t = d / se
    if alternative == "greater":
        return special.stdtr(df, -t), d, se, df
    return 2 * special.stdtr(df, -np.abs(t)), d, se, df


def _sequential_rejects(a: np.ndarray, b: np.ndarray, alpha: float = 0.05,
                        spending: str = "obrien_fleming") -> np.ndarray:
    nu = nominal_levels(FRACTIONS, alpha, spending, 2)
    out = np.zeros(len(a), bool)
    for k, n in enumerate(LOOKS):
        out |= _welch_p(a[:, :n], b[:, :n])[0] <= nu[k]
    return out


@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
def test_the_design_keeps_its_level_under_the_null(spending: str) -> None:
    """A/A over 2,000 contrasts (unequal variances): false positives within [0.035, 0.06]."""
    rng = np.random.default_rng(20261202)
    a, b = rng.normal(0, 1, (2000, 35)), rng.normal(0, 1.6, (2000, 35))
    rate = _sequential_rejects(a, b, spending=spending).mean()
    assert 0.035 <= rate <= 0.06, rate


def test_power_at_the_fixed_designs_mde_is_within_3_points() -> None:
    rng = np.random.default_rng(7)
    mde = min_detectable_effect(Moments(0, 1, 35), Moments(0, 1, 35), 0.05)
    a, b = rng.normal(mde, 1, (2000, 35)), rng.normal(0, 1, (2000, 35))
    fixed = (_welch_p(a, b)[0] <= 0.05).mean()
    sequential = _sequential_rejects(a, b).mean()
    assert abs(fixed - 0.8) < 0.04  # the MDE is the 80 % power effect
    assert abs(sequential - fixed) <= 0.03, (sequential, fixed)


def test_the_tost_stop_keeps_its_level() -> None:
    """True Δ on the margin (the TOST null's edge): declared equivalent at some look ≤ α."""
    rng = np.random.default_rng(3)
    margin = 0.5
    a, b = rng.normal(margin, 1, (2000, 35)), rng.normal(0, 1, (2000, 35))
    nu = nominal_levels(FRACTIONS, 0.05, "obrien_fleming", 1)
    equivalent = np.zeros(2000, bool)
    for k, n in enumerate(LOOKS):
        _, d, se, df = _welch_p(a[:, :n], b[:, :n])
        p = np.maximum(special.stdtr(df, -(d + margin) / se), special.stdtr(df, (d - margin) / se))
        equivalent |= p <= nu[k]
    assert equivalent.mean() <= 0.06, equivalent.mean()


def test_repeated_cis_cover_at_every_look_at_once() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.3, 1, (2000, 35)), rng.normal(0, 1.3, (2000, 35))
    covered = np.ones(2000, bool)
    for k, n in enumerate(LOOKS):
        _, d, se, df = _welch_p(a[:, :n], b[:, :n])
        for i in range(2000):
            lo, hi = repeated_ci(d[i], se[i], df[i], k, FRACTIONS, 0.05)
            covered[i] &= lo <= 0.3 <= hi
    assert covered.mean() >= 0.94, covered.mean()


def test_conditional_power_matches_a_simulated_continuation() -> None:
    """At look 1 with z = 1.5 the current-trend drift θ = z / √t; the rest of the Brownian
    path simulated: P(Z_K ≥ c_K)."""
    rng = np.random.default_rng(9)
    t1, z = FRACTIONS[0], 1.5
    cp = conditional_power(float(special.ndtr(-z)), 0, FRACTIONS, 0.025)
    theta = z / math.sqrt(t1)
    b_end = z * math.sqrt(t1) + rng.normal(theta * (1 - t1), math.sqrt(1 - t1), 200_000)
    c_final = boundaries(FRACTIONS, 0.025)[-1]
    assert cp == pytest.approx((b_end >= c_final).mean(), abs=0.005)


# ---------------------------------------------------------------- the looks of a suite

SEQ = TINY_SUITE.replace("seeds: {{count: 2}}", "seeds: {{count: 6, sequential: {{looks: [2, 4, 6]}}}}")


def _frame(plan, values: dict[str, list[float]]) -> pd.DataFrame:
    """Finished trials with ``accuracy`` (one value per seed index, for the given cells)."""
    rows = []
    for t in plan.trials:
        if t.cell.name in values and t.index < len(values[t.cell.name]):
            rows.append({"cell": t.cell.name, "replicate": "", "unit": "", "seed": t.seed,
                         "status": "FINISHED", "trial_key": t.key,
                         "accuracy": values[t.cell.name][t.index]})
    return pd.DataFrame(rows)


def _plan(tmp_path, contrasts: str, protocols: str = "[ft, lp]"):
    suite = tmp_path / "s.yaml"
    text = SEQ.split("contrasts:")[0].format(output=tmp_path / "out").replace(
        "protocols: [ft, lp]", f"protocols: {protocols}")
    suite.write_text(text + contrasts + "report: {metrics: [accuracy]}\n")
    return suite_plan(suite)


def test_a_clear_contrast_stops_its_cells_at_the_first_look(tmp_path) -> None:
    plan = _plan(tmp_path, "contrasts:\n  - {a: rnd+sup+bt/ft, b: rnd+sup/ft}\n"
                 "  - {a: rnd+sup+bt/lp, b: rnd+sup/lp}\n")
    # two seeds per arm: O'Brien–Fleming's first look of three needs a one-sided nominal p of
    # about 1e-4 per Holm step, so the effect must be overwhelming
    clear = {"rnd+sup+bt/ft": [0.90, 0.9001, 0.9, 0.9, 0.9, 0.9],
             "rnd+sup/ft": [0.10, 0.1001, 0.1, 0.1, 0.1, 0.1],
             "rnd+sup+bt/lp": [0.5, 0.6, 0.4, 0.55, 0.45, 0.5],
             "rnd+sup/lp": [0.52, 0.41, 0.6, 0.5, 0.47, 0.51]}
    design = design_of(plan)
    assert design is not None and design.looks == (2, 4, 6)
    first = {k: v[:2] for k, v in clear.items()}
    analysis = analyse(plan, _frame(plan, first))
    state = analysis.sequential
    assert state is not None and state.complete == 1
    assert state.stop == {"rnd+sup/ft": 0, "rnd+sup+bt/ft": 0, "rnd+sup/lp": None,
                          "rnd+sup+bt/lp": None}
    ft = analysis.contrasts[0]
    assert (ft.verdict, ft.look, ft.looks) == ("A ≻ B", 1, 3)
    nominal = stats.ttest_ind(first["rnd+sup+bt/ft"], first["rnd+sup/ft"], equal_var=False)
    assert ft.primary.p == pytest.approx(repeated_p(nominal.pvalue, 0, (1 / 3, 2 / 3, 1),
                                                    sides=2), rel=1e-12)
    assert ft.primary.p > nominal.pvalue  # never the naive p-value
    assert ft.primary.ci_low < nominal.confidence_interval().low  # the repeated CI is wider
    # the open cells get the next look's seeds; the stopped ones never do
    by = {t.key: t for t in plan.trials}
    allowed = {(by[k].cell.name, by[k].index) for k in by if state.allows(by[k])}
    assert ("rnd+sup/lp", 3) in allowed and ("rnd+sup/ft", 2) not in allowed
    # every trial that exists is used only up to its cell's stopping look
    full = analyse(plan, _frame(plan, clear))
    assert [c.n for c in full.cells if c.cell.endswith("/ft")] == [2, 2]
    assert [c.n for c in full.cells if c.cell.endswith("/lp")] == [6, 6]
    lp = full.contrasts[1]
    assert (lp.look, lp.verdict) == (3, "inconclusive")


def test_an_incomplete_look_decides_nothing_and_says_so(tmp_path) -> None:
    plan = _plan(tmp_path, "contrasts:\n  - {a: rnd+sup+bt/ft, b: rnd+sup/ft}\n")
    partial = {"rnd+sup+bt/ft": [0.9, 0.91], "rnd+sup/ft": [0.1]}
    analysis = analyse(plan, _frame(plan, partial))
    assert analysis.sequential.complete == 0
    assert any("look 1 of 3" in w and "not complete" in w for w in analysis.warnings)
    assert analysis.contrasts[0].verdict == "not testable"


def test_a_margin_stops_by_equivalence_and_futility_stops_the_rest(tmp_path) -> None:
    plan = _plan(tmp_path, "contrasts:\n  - {a: rnd+sup+bt/ft, b: rnd+sup/ft, margin: 0.5}\n"
                 "  - {a: rnd+sup+bt/lp, b: rnd+sup/lp}\n")
    raw = plan.loaded.suite.model_copy(deep=True)
    raw.seeds.sequential.futility = 0.2
    plan.loaded.suite = raw
    same = [0.5, 0.5001, 0.49, 0.51, 0.5, 0.5]
    values = {"rnd+sup+bt/ft": same, "rnd+sup/ft": [0.5001, 0.5, 0.5, 0.5, 0.49, 0.5],
              "rnd+sup+bt/lp": [0.5, 0.6, 0.4, 0.55], "rnd+sup/lp": [0.52, 0.58, 0.42, 0.56]}
    state = run_looks(plan, _frame(plan, values), design_of(plan),
                      lambda res: _rows(plan, res))
    assert state.decided[0] == (0, "A ≈ B")
    look, why = state.decided[1]
    assert why == "futile" and look <= 1
    assert state.rows[1].futile and state.rows[1].verdict == "inconclusive"


def _rows(plan, res):
    from bench.analysis import contrast_rows
    from bench.analysis.cells import arm

    return contrast_rows(plan, ["accuracy"], lambda c, m: arm(plan, res, c, m))


def test_sequential_looks_must_end_at_the_seed_count(tmp_path) -> None:
    from bench.config.errors import SuiteError

    suite = tmp_path / "s.yaml"
    suite.write_text(SEQ.replace("looks: [2, 4, 6]", "looks: [2, 4]").format(
        output=tmp_path / "out"))
    with pytest.raises(SuiteError, match=r"looks must end at seeds\.count"):
        suite_plan(suite)


def _decided_suite(folder) -> object:
    """The tiny suite's probe cells, 6 seeds in looks of 3, with a margin every accuracy
    difference is within (1.0): equivalence is decided at the first look."""
    suite = folder / "tiny.yaml"
    text = TINY_SUITE.split("seeds:")[0].format(output=folder / "out")
    text = text.replace("protocols: [ft, lp]", "protocols: [lp]")
    suite.write_text(text + "seeds: {count: 6, vary: [head], sequential: {looks: [3, 6]}}\n"
                     "contrasts:\n  - {a: rnd+sup+bt/lp, b: rnd+sup/lp, margin: 1.0}\n"
                     "report: {metrics: [accuracy]}\n")
    return suite


def test_a_sequential_run_stops_decided_cells_and_reports_their_look(tmp_path, capsys) -> None:
    """Equivalence decided at the first look: the second look's trials never run; the rerun
    finds nothing to do; plan and report say where the cells stopped."""
    import csv

    from bench.cli import main

    suite = _decided_suite(tmp_path)
    assert main(["run", str(suite), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "6 trial(s) run" in out and "6 not needed (sequential seeds" in out, out
    assert main(["run", str(suite), "--quiet"]) == 0
    assert "0 trial(s) run" in capsys.readouterr().out
    assert main(["plan", str(suite)]) == 0
    text = capsys.readouterr().out
    assert "1 of 2 complete" in text and "6 trial(s) will not run" in text, text
    rep = tmp_path / "rep"
    assert main(["report", str(suite), "--report-dir", str(rep), "--format", "csv",
                 "--format", "markdown"]) == 0
    row = next(csv.DictReader((rep / "contrasts.csv").open()))
    assert (row["verdict"], row["look"], row["looks"], row["n_a"]) == ("A ≈ B", "1", "2", "3")
    md = (rep / "report.md").read_text()
    assert "A ≈ B (1 pre-training run; look 1 of 2)" in md
    assert "repeated" in md and "1 of 2 look(s) complete" in md
    assert "3 of 6 trials finished" not in md  # the design planned 3 for a stopped cell


def test_slurm_submits_one_trial_wave_per_look_and_only_for_open_cells(tmp_path) -> None:
    """`unit_waves` over a store that the test fills in: the stage waves, then look 1's trials;
    look 2's trials only when look 1 left the contrast open."""
    from bench.execute.slurm import unit_waves
    from bench.track import FINISHED, RunRecord

    plan = _plan(tmp_path, "contrasts:\n  - {a: rnd+sup+bt/lp, b: rnd+sup/lp, margin: 0.05}\n",
                 "[lp]")
    pending = list(plan.trials)
    needed = {s.key for s in plan.stages}

    class Store:
        best: ClassVar[dict] = {}

        def status_by_key(self):
            return dict(self.best)

    def finish(keys, values):
        by = {t.key: t for t in plan.trials}
        for k in keys:
            t = by[k]
            v = values[t.cell.name][t.index]
            Store.best[k] = RunRecord(k, k, "trial", FINISHED, {}, {}, {"test_accuracy": v},
                                      0, 1)

    for open_after_look_1 in (False, True):
        Store.best = {}
        spread = 0.2 if open_after_look_1 else 0.0001
        values = {"rnd+sup+bt/lp": [0.5, 0.5 + spread, 0.5, 0.5, 0.5, 0.5],
                  "rnd+sup/lp": [0.5 + spread, 0.5, 0.5, 0.5, 0.5, 0.5]}
        gen = unit_waves(plan, Store(), pending, needed)
        stage_waves = [next(gen), next(gen)]  # sup, then bt on top of it
        assert [len(w) for w in stage_waves] == [1, 1]
        look1 = next(gen)
        keys = [k for group in look1 for k in group]
        assert len(look1) == 2 and len(keys) == 4  # 2 cells × 2 seeds (looks [2, 4, 6])
        finish(keys, values)
        rest = list(gen) if not open_after_look_1 else [next(gen)]
        if open_after_look_1:
            assert sum(len(g) for g in rest[0]) == 4  # seeds 3 and 4 of both cells
        else:
            assert rest == []  # decided (≈) at look 1: nothing more is submitted


def test_a_killed_sequential_run_resumes_to_the_same_trials(tmp_path) -> None:
    """SIGKILLed once a stage has finished, then run again: the finished trials are exactly
    those of an uninterrupted run (look 1 of both cells), each finished once, same metrics."""
    import signal
    import time
    from collections import Counter

    from conftest import bench_process, suite_tracker

    from bench.results import load_results

    def finished(folder):
        suite = folder / "tiny.yaml"
        runs = suite_tracker(suite).runs()
        per_key = Counter(r.key for r in runs if r.status == FINISHED and r.kind == "trial")
        assert set(per_key.values()) == {1}
        df = load_results(suite_plan(suite), suite_tracker(suite))
        df = df[df["status"] == FINISHED]
        return dict(zip(df["trial_key"], df["accuracy"].round(6), strict=True))

    from bench.cli import main

    ref = tmp_path / "ref"
    ref.mkdir()
    assert main(["run", str(_decided_suite(ref)), "--quiet"]) == 0  # uninterrupted
    killed = tmp_path / "killed"
    killed.mkdir()
    suite = _decided_suite(killed)
    proc = bench_process("run", str(suite), cwd=killed, env={"BENCH_PLAIN": "1"})
    deadline = time.time() + 120
    while not list((killed / "out" / "encoders").glob("*.pt")) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc = bench_process("run", str(suite), "--quiet", cwd=killed)
    assert proc.wait(timeout=300) == 0
    assert finished(killed) == finished(ref) and len(finished(ref)) == 6


def test_a_killed_trial_keeps_its_look_open_and_a_failed_one_does_not(tmp_path) -> None:
    """A KILLED run is redone, so nothing may be decided without it; a FAILED one is lost."""
    plan = _plan(tmp_path, "contrasts:\n  - {a: rnd+sup+bt/lp, b: rnd+sup/lp}\n", "[lp]")
    values = {"rnd+sup+bt/lp": [0.90, 0.9001], "rnd+sup/lp": [0.10, 0.1001]}
    for status, complete in (("KILLED", 0), ("FAILED", 1)):
        df = _frame(plan, values)
        df.loc[df.index[-1], "status"] = status
        state = run_looks(plan, df, design_of(plan), lambda res: _rows(plan, res))
        assert state.complete == complete, status
