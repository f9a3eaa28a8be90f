"""Welch tests and summaries against scipy, and the paper's p-values from its summary numbers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bench.stats import summarize, welch


def _with_stats(mean: float, sd: float, n: int = 35, seed: int = 0) -> np.ndarray:
    """n values with exactly this mean and sample SD."""
    z = np.random.default_rng(seed).standard_normal(n)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


def test_welch_equals_scipy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.7, 0.02, 35), rng.normal(0.69, 0.01, 30)
    for alt in ("two-sided", "greater", "less"):
        ref = stats.ttest_ind(a, b, equal_var=False, alternative=alt)
        got = welch(a, b, alt)
        assert got.t == pytest.approx(ref.statistic, abs=1e-10)
        assert got.p == pytest.approx(ref.pvalue, abs=1e-10)
        assert got.df == pytest.approx(ref.df, abs=1e-10)
        ci = ref.confidence_interval()
        assert (got.ci_low, got.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    assert welch(a, b).df == pytest.approx(df, rel=1e-12)  # Welch–Satterthwaite


def test_paper_p_values_from_its_summary_statistics() -> None:
    # PROTOCOL.md: SL 0.65701 ± 0.02109, SSL 0.69113 ± 0.01117 (accuracy, n = 35 each)
    sl, ssl = _with_stats(0.65701, 0.02109), _with_stats(0.69113, 0.01117, seed=1)
    assert f"{welch(ssl, sl, 'greater').p:.3g}" == "1.27e-11"
    # SL + I (SSLp) 0.70065 ± 0.01246 vs SSL + I (SSLp) 0.69583 ± 0.00925, two-sided
    a, b = _with_stats(0.70065, 0.01246, seed=2), _with_stats(0.69583, 0.00925, seed=3)
    assert f"{welch(a, b).p:.2g}" == "0.071"


def test_summary_uses_sample_sd_and_t_interval() -> None:
    v = np.array([0.61, 0.64, 0.66, 0.70, 0.62])
    s = summarize(v)
    assert s.sd == pytest.approx(np.std(v, ddof=1), abs=1e-12)
    lo, hi = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert (s.ci_low, s.ci_high) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    assert summarize(np.array([np.nan, 0.5])).n == 1


def test_welch_rejection_rate_under_the_null() -> None:
    rng = np.random.default_rng(7)
    p = np.array([welch(rng.normal(0, 1, 10), rng.normal(0, 2, 10)).p for _ in range(2000)])
    assert 0.035 <= float((p < 0.05).mean()) <= 0.065
