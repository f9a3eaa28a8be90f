"""Statistics of the report against scipy/statsmodels, simulation, and the rendered formats."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.plan import build_plan, load_suite
from bench.report.render import render, write_csv
from bench.report.tables import build_report
from bench.stats import (
    Moments,
    benjamini_hochberg,
    hedges_g,
    holm,
    min_detectable_effect,
    paired,
    prob_superiority,
    tost,
    welch,
    welch_power,
)

PAPER = """\
name: paper_stats
datasets:
  d:
    format: synthetic
    synthetic: {{n_images: 40, image_size: 8}}
    split: {{fractions: {{train: 0.5, test: 0.5}}}}
inits:
  SL: {{arch: tiny_resnet_w8, seed: 1}}
  SSL: {{arch: tiny_resnet_w8, seed: 2}}
stages:
  I: {{method: barlow_twins, data: [d:train], epochs: 1}}
protocols:
  ft: {{kind: fine_tune, train: d:train, test: d:test, epochs: 1}}
  lp: {{kind: linear_probe, train: d:train, test: d:test, epochs: 1}}
grid: {{inits: [SL, SSL], chains: [[], [I]], protocols: [ft, lp]}}
seeds: {{count: {n}, vary: [head]}}
report: {{metrics: [accuracy], alpha: 0.05}}
contrasts:
{contrasts}
"""

PAPER_CONTRASTS = """\
  - {a: SSL/ft, b: SL/ft, alternative: greater, family: init, label: "SL < SSL"}
  - {a: SL+I/ft, b: SSL+I/ft, family: further, margin: 0.02}
  - {vs: SL/ft, within: protocol, family: vs_sl, paired: true}
  - {all_pairs: true, within: protocol, family: all}
"""


def _with_stats(mean: float, sd: float, n: int, seed: int) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal(n)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


def _plan(tmp_path: Path, n: int = 35, contrasts: str = PAPER_CONTRASTS):
    path = tmp_path / "paper.yaml"
    path.write_text(PAPER.format(n=n, contrasts=contrasts))
    return build_plan(load_suite(path, env={}))


def _results(plan, values: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = []
    for cell in plan.cells:
        for seed, v in enumerate(values[cell.name]):
            rows.append({"cell": cell.name, "init": cell.init, "chain": "+".join(cell.chain),
                         "protocol": cell.protocol, "seed": seed, "status": "FINISHED",
                         "failure": "", "trial_key": f"{cell.name}{seed}", "run_id": "",
                         "accuracy": v, "f1_c0": v / 2, "f1_c1": 1 - v / 2})
    return pd.DataFrame(rows)


# the paper's summary statistics (fine-tune accuracy, n = 35)
PAPER_FT = {"SL/ft": (0.65701, 0.02109), "SSL/ft": (0.69113, 0.01117),
            "SL+I/ft": (0.70065, 0.01246), "SSL+I/ft": (0.69583, 0.00925)}


@pytest.fixture
def paper(tmp_path: Path):
    plan = _plan(tmp_path)
    vals = {name: _with_stats(m, s, 35, i) for i, (name, (m, s)) in enumerate(PAPER_FT.items())}
    for i, name in enumerate(["SL/lp", "SSL/lp", "SL+I/lp", "SSL+I/lp"]):
        vals[name] = _with_stats(0.6 + 0.02 * i, 0.015, 35, 10 + i)
    return plan, _results(plan, vals), vals


def test_paper_p_values_through_the_report(paper) -> None:
    plan, results, _ = paper
    data = build_report(plan, results)
    first = next(r for r in data.contrasts if r.label == "SL < SSL")
    assert f"{first.test.p:.3g}" == "1.27e-11"
    assert first.verdict == "A ≻ B"
    second = next(r for r in data.contrasts if r.a == "SL+I/ft" and r.b == "SSL+I/ft"
                  and r.family == "further")
    assert f"{second.test.p:.2g}" == "0.071"
    # not significant; with its declared ±0.02 margin, TOST (alone in its family) decides
    assert second.margin == 0.02 and second.tost_p_holm == second.tost_p < 0.05
    assert second.verdict == "A ≈ B"
    # the same pair without a declared margin: inconclusive, never "≈"
    plain = next(r for r in data.contrasts if r.a == "SL+I/ft" and r.b == "SSL+I/ft"
                 and r.family == "all")
    assert plain.margin is None and np.isnan(plain.tost_p) and plain.verdict == "inconclusive"


def test_every_statistic_matches_an_independent_computation(paper) -> None:
    plan, results, vals = paper
    data = build_report(plan, results)
    for r in data.contrasts:
        a, b = vals[r.a], vals[r.b]
        ref = stats.ttest_ind(a, b, equal_var=False, alternative=r.test.alternative)
        assert r.test.p == pytest.approx(ref.pvalue, abs=1e-10, rel=1e-10)
        assert r.test.t == pytest.approx(ref.statistic, abs=1e-10)
        # Hedges' g from its definition
        na, nb = len(a), len(b)
        sp = np.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
        g = (1 - 3 / (4 * (na + nb) - 9)) * (a.mean() - b.mean()) / sp
        assert r.g == pytest.approx(g, abs=1e-10)
        # P(A > B) by counting pairs
        ps = (np.sum(a[:, None] > b[None, :]) + 0.5 * np.sum(a[:, None] == b[None, :])) / (na * nb)
        assert r.prob_a_better == pytest.approx(ps, abs=1e-10)
        # TOST: statsmodels, and two one-sided scipy Welch tests against the margins
        from statsmodels.stats.weightstats import ttost_ind

        if r.margin is None:  # no declared margin: no equivalence test at all
            assert np.isnan(r.tost_p) and r.verdict != "A ≈ B"
        else:
            ref_tost = ttost_ind(a, b, -r.margin, r.margin, usevar="unequal")[0]
            assert r.tost_p == pytest.approx(ref_tost, abs=1e-10)
            lo = stats.ttest_ind(a, b - r.margin, equal_var=False, alternative="greater").pvalue
            hi = stats.ttest_ind(a, b + r.margin, equal_var=False, alternative="less").pvalue
            assert r.tost_p == pytest.approx(max(lo, hi), abs=1e-10)
        assert r.prob_a_better == pytest.approx(
            stats.mannwhitneyu(a, b).statistic / (na * nb), abs=1e-10)
        ci = ref.confidence_interval()
        assert (r.test.ci_low, r.test.ci_high) == (pytest.approx(ci.low, abs=1e-10),
                                                   pytest.approx(ci.high, abs=1e-10))
        assert r.test.df == pytest.approx(ref.df, abs=1e-9)
    # Holm within each family, BH across the report, by hand
    for fam in {r.family for r in data.contrasts}:
        rows = [r for r in data.contrasts if r.family == fam]
        p = np.array([r.test.p for r in rows])
        order = np.argsort(p)
        adj = np.empty_like(p)
        running = 0.0
        for k, i in enumerate(order):
            running = max(running, min(1.0, (len(p) - k) * p[i]))
            adj[i] = running
        assert [r.p_holm for r in rows] == pytest.approx(adj.tolist(), abs=1e-10)
    p = np.array([r.test.p for r in data.contrasts])
    m = len(p)
    order = np.argsort(p)
    bh = np.empty_like(p)
    running = 1.0
    for k in range(m - 1, -1, -1):
        i = order[k]
        running = min(running, p[i] * m / (k + 1))
        bh[i] = running
    assert [r.p_bh for r in data.contrasts] == pytest.approx(bh.tolist(), abs=1e-10)


def test_paired_tests_and_summaries(paper) -> None:
    plan, results, vals = paper
    data = build_report(plan, results)
    r = next(r for r in data.contrasts if r.family == "vs_sl" and r.a == "SSL/ft")
    a, b = vals["SSL/ft"], vals["SL/ft"]
    assert r.paired_t_p == pytest.approx(stats.ttest_rel(a, b).pvalue, abs=1e-10)
    assert r.wilcoxon_p == pytest.approx(stats.wilcoxon(a, b).pvalue, abs=1e-10)
    cell = next(c for c in data.cells if c.cell == "SL/ft")
    s = cell.metrics["accuracy"]
    v = vals["SL/ft"]
    lo, hi = stats.t.interval(0.95, 34, loc=v.mean(), scale=stats.sem(v))
    assert (s.mean, s.sd, s.ci_low, s.ci_high) == (
        pytest.approx(0.65701, abs=1e-12), pytest.approx(0.02109, abs=1e-12),
        pytest.approx(lo, abs=1e-10), pytest.approx(hi, abs=1e-10))
    q1, q3 = np.percentile(v, [25, 75])
    assert s.iqr == pytest.approx(q3 - q1, abs=1e-12)


def test_min_detectable_effect_has_80_percent_power() -> None:
    # equal n and SD: Welch's noncentral t at the Welch df
    n, alpha, sd = 35, 0.05, 0.015
    mde = min_detectable_effect(Moments(0.7, sd, n), Moments(0.7, sd, n), alpha)
    df = 2 * n - 2  # Welch–Satterthwaite df of equal arms
    nc = mde / (sd * np.sqrt(2 / n))
    crit = stats.t.ppf(1 - alpha / 2, df)
    power = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
    assert power == pytest.approx(0.8, abs=1e-6)
    # unequal n and SD (35 vs 10, SD 1 vs 2): the pooled-SD Student MDE said 1.31, where
    # Welch's test has power 0.44; the Welch MDE has 80 % power in simulated Welch tests
    a, b = Moments(0.0, 1.0, 35), Moments(0.0, 2.0, 10)
    mde = min_detectable_effect(a, b, alpha)
    assert mde > 1.9
    assert welch_power(1.31, a, b, alpha) == pytest.approx(0.44, abs=0.01)
    rng = np.random.default_rng(3)
    hits = [welch(rng.normal(mde, 1, 35), rng.normal(0, 2, 10)).p < alpha for _ in range(4000)]
    assert float(np.mean(hits)) == pytest.approx(0.8, abs=0.02)
    # one-sided, at a Holm family's first-step level
    one = min_detectable_effect(a, b, alpha / 8, "greater")
    hits = [welch(rng.normal(one, 1, 35), rng.normal(0, 2, 10), "greater").p < alpha / 8
            for _ in range(4000)]
    assert float(np.mean(hits)) == pytest.approx(0.8, abs=0.02)


def test_generators_expand_as_documented(paper) -> None:
    plan, results, _ = paper
    data = build_report(plan, results)
    vs = {(r.a, r.b) for r in data.contrasts if r.family == "vs_sl"}
    assert vs == {("SSL/ft", "SL/ft"), ("SL+I/ft", "SL/ft"), ("SSL+I/ft", "SL/ft"),
                  ("SSL/lp", "SL/lp"), ("SL+I/lp", "SL/lp"), ("SSL+I/lp", "SL/lp")}
    pairs = [r for r in data.contrasts if r.family == "all"]
    assert len(pairs) == 6 + 6  # C(4, 2) per protocol


def test_aa_simulation_false_positive_rates() -> None:
    rng = np.random.default_rng(11)
    p = np.array([welch(rng.normal(0.7, 0.01, 35), rng.normal(0.7, 0.01, 35)).p
                  for _ in range(2000)])
    assert 0.035 <= float((p < 0.05).mean()) <= 0.065
    fwer = np.mean([
        min(holm([welch(rng.normal(0, 1, 20), rng.normal(0, 1.5, 20)).p for _ in range(10)]))
        < 0.05 for _ in range(1000)])
    assert fwer <= 0.065
    from statsmodels.stats.multitest import multipletests

    ps = [0.01, 0.04, 0.03, 0.2, 0.0001, 0.5]
    assert benjamini_hochberg(ps) == pytest.approx(multipletests(ps, method="fdr_bh")[1],
                                                   abs=1e-12)
    assert holm(ps) == pytest.approx(multipletests(ps, method="holm")[1], abs=1e-12)


def test_partial_order_and_hasse_reduction(paper) -> None:
    from bench.report.tables import PartialOrder

    o = PartialOrder("accuracy", "ft", ["a", "b", "c"], [("a", "b"), ("b", "c"), ("a", "c")],
                     [], [])
    assert o.hasse() == [("a", "b"), ("b", "c")]
    plan, results, _ = paper
    data = build_report(plan, results)
    ft = next(x for x in data.orders if x.protocol == "ft")
    assert ("SSL/ft", "SL/ft") in ft.better
    assert not any(set(p) == {"SL+I/ft", "SSL+I/ft"} for p in ft.better)


def test_formats_render(paper, tmp_path: Path) -> None:
    from bench.report.figures import all_figures

    plan, results, _ = paper
    data = build_report(plan, results)
    md = render(data, "markdown")
    assert "| SSL | — | 35 | 0 | 0.6911 ± 0.0112" in md and "1.27e-11" in md
    assert "## Methods" in md and "Holm" in md
    data.figures = all_figures(data, results)
    html = render(data, "html")
    assert html.count("<svg") >= 4 and "A ≻ B" in html
    tex = render(data, "latex-tables")
    # cells of 2 protocols, side by side, contrasts in 3 tables, per-class F1 of 2 protocols
    assert tex.count(r"\begin{tabular}") == 8 and r"\toprule" in tex
    assert r"SL+\allowbreak{}I/\allowbreak{}ft" in tex and "SL\\_" not in tex
    assert r"\input{tables}" in render(data, "latex")
    report_tex = render(data, "latex")
    assert r"\usepackage{lmodern}" in report_tex and r"\usepackage{siunitx}" in report_tex
    assert r"\label{tab:paper-stats:contrasts}" in tex and r"\num{1.27e-11}" in tex
    assert not re.search(r"[\d}]\*", tex)  # significance marks in a column of their own
    assert r"\num{-0." in tex and "$-$0." not in tex  # siunitx sets the minus sign
    paths = write_csv(data, results, tmp_path / "csv")
    assert [p.name for p in paths] == ["trials.csv", "cells.csv", "contrasts.csv"]
    assert len(pd.read_csv(paths[0])) == 8 * 35


def test_html_and_latex_escape_special_characters(tmp_path: Path) -> None:
    from bench.report.figures import all_figures

    label = r"<b>x</b> & 50%_# <script>alert(1)</script> $\\input{/etc/passwd}$"
    plan = _plan(tmp_path, n=3, contrasts=f'  - {{a: SSL/ft, b: SL/ft, label: "{label}"}}')
    vals = {c.name: np.array([0.5, 0.6, 0.7]) for c in plan.cells}
    results = _results(plan, vals)
    data = build_report(plan, results)
    data.figures = all_figures(data, results)  # matplotlib draws the label, never as mathtext
    assert data.figures
    assert "<b>x</b>" not in render(data, "html") and "<script>alert" not in render(data, "html")
    tex = render(data, "latex")
    from bench.report.render import latex_escape

    assert latex_escape("50%_#&{}") == r"50\%\_\#\&\{\}"
    assert "≻" not in tex and "±" not in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_compiles(paper, tmp_path: Path) -> None:
    plan, results, _ = paper
    from bench.report.render import render_files

    for name, text in render_files(build_report(plan, results), "latex").items():
        (tmp_path / name).write_text(text)
    for _ in range(2):  # the second pass resolves the \ref's
        out = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                              "report.tex"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stdout[-2000:]
    log = (tmp_path / "report.log").read_text(errors="replace")
    assert "Overfull" not in log and "undefined" not in log, log[-3000:]
    assert (tmp_path / "report.pdf").stat().st_size > 1000
    if shutil.which("pdffonts"):  # outline fonts only (lmodern), no Type 3 bitmaps
        fonts = subprocess.run(["pdffonts", "report.pdf"], cwd=tmp_path, capture_output=True,
                               text=True, check=True).stdout
        assert "Type 3" not in fonts and "LMRoman" in fonts


def test_partial_results_and_failures_are_counted(tmp_path: Path) -> None:
    plan = _plan(tmp_path, n=4, contrasts="  - {a: SSL/ft, b: SL/ft}")
    vals = {c.name: np.array([0.5, 0.6, 0.7, 0.65]) for c in plan.cells}
    results = _results(plan, vals)
    results.loc[(results["cell"] == "SL/ft") & (results["seed"] == 3), "status"] = "FAILED"
    results = results[~((results["cell"] == "SSL/lp") & (results["seed"] >= 2))]
    data = build_report(plan, results)
    sl = next(c for c in data.cells if c.cell == "SL/ft")
    assert (sl.n, sl.failed) == (3, 1)
    assert "SSL/lp: 2 of 4 trials finished" in data.warnings
    assert "SL/ft: 3 of 4 trials finished (1 failed or interrupted)" in data.warnings
    assert data.contrasts[0].n_b == 3


def test_hedges_tost_paired_helpers_handle_small_inputs() -> None:
    assert np.isnan(hedges_g([1.0], [2.0])[0])
    assert np.isnan(tost([1.0], [2.0], 0.1))
    assert np.isnan(paired([1.0], [2.0])[0])
    assert np.isnan(prob_superiority([], [1.0]))
