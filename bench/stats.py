"""Statistics over trials, on scipy and statsmodels (no hand-rolled distributions).

Per cell: n, mean, sample SD (n − 1), 95 % t-CI of the mean, median, IQR.
Per contrast A − B: Δ with its Welch–Satterthwaite CI, t, df and p of Welch's unequal-variance
t-test (two-sided, or one-sided when declared); Hedges' g with an approximate CI (Hedges & Olkin
1985: SE² = (nA + nB)/(nA·nB) + g²/(2(nA + nB))); P(A > B), the probability of superiority
(Mann–Whitney U / (nA·nB), ties counted ½); TOST equivalence within ±margin (statsmodels
``ttost_ind``, unequal variances); optionally a paired t-test and Wilcoxon signed-rank test when
seeds are matched; the minimum detectable |Δ| at 80 % power (statsmodels ``TTestIndPower``).
Multiplicity: Holm within each family, Benjamini–Hochberg across the report (both checked
against statsmodels ``multipletests`` in the tests).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats


def _finite(x: np.ndarray | list[float]) -> np.ndarray:
    v = np.asarray(x, dtype=float)
    return v[np.isfinite(v)]


@dataclass(frozen=True)
class Summary:
    """Per-cell summary of one metric. ``sd`` is the sample SD (n − 1); CI is the t-CI."""

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    median: float
    q1: float = math.nan
    q3: float = math.nan

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1


def summarize(values: np.ndarray | list[float], confidence: float = 0.95) -> Summary:
    """Summary of the finite values (NaN dropped)."""
    v = _finite(values)
    n = len(v)
    nan = math.nan
    if n == 0:
        return Summary(0, nan, nan, nan, nan, nan, nan, nan)
    mean = float(v.mean())
    sd = float(v.std(ddof=1)) if n > 1 else nan
    if n > 1:
        lo, hi = stats.t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
    else:
        lo = hi = nan
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return Summary(n, mean, sd, float(lo), float(hi), float(med), float(q1), float(q3))


@dataclass(frozen=True)
class WelchResult:
    """Welch's unequal-variance t-test of A − B."""

    delta: float
    ci_low: float
    ci_high: float
    t: float
    df: float
    p: float
    alternative: str


def welch(a: np.ndarray | list[float], b: np.ndarray | list[float],
          alternative: str = "two-sided", confidence: float = 0.95) -> WelchResult:
    """``scipy.stats.ttest_ind(a, b, equal_var=False)``; ``greater`` tests mean(A) > mean(B).

    The CI is the Welch–Satterthwaite interval for Δ (one-sided bounds for one-sided tests).
    """
    a, b = _finite(a), _finite(b)
    if len(a) < 2 or len(b) < 2:
        nan = math.nan
        return WelchResult(nan, nan, nan, nan, nan, nan, alternative)
    with warnings.catch_warnings():  # identical samples: scipy warns, t is ±inf or NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
        ci = res.confidence_interval(confidence_level=confidence)
    return WelchResult(float(a.mean() - b.mean()), float(ci.low), float(ci.high),
                       float(res.statistic), float(res.df), float(res.pvalue), alternative)


def hedges_g(a: np.ndarray | list[float], b: np.ndarray | list[float],
             confidence: float = 0.95) -> tuple[float, float, float]:
    """(g, CI low, CI high): bias-corrected standardised mean difference (pooled SD)."""
    a, b = _finite(a), _finite(b)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return math.nan, math.nan, math.nan
    pooled = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    if pooled == 0:
        return math.nan, math.nan, math.nan
    d = (a.mean() - b.mean()) / pooled
    j = 1 - 3 / (4 * (na + nb) - 9)
    g = j * d
    se = math.sqrt((na + nb) / (na * nb) + g**2 / (2 * (na + nb)))
    z = stats.norm.ppf(0.5 + confidence / 2)
    return float(g), float(g - z * se), float(g + z * se)


def prob_superiority(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """P(A > B) + ½ P(A = B) for a random pair: Mann–Whitney U / (nA · nB)."""
    a, b = _finite(a), _finite(b)
    if not len(a) or not len(b):
        return math.nan
    u = stats.mannwhitneyu(a, b, alternative="two-sided").statistic
    return float(u / (len(a) * len(b)))


def tost(a: np.ndarray | list[float], b: np.ndarray | list[float], margin: float) -> float:
    """p-value of the TOST equivalence test of |Δ| < margin (unequal variances)."""
    from statsmodels.stats.weightstats import ttost_ind

    a, b = _finite(a), _finite(b)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p, _, _ = ttost_ind(a, b, -margin, margin, usevar="unequal")
    return float(p)


def paired(a: np.ndarray | list[float], b: np.ndarray | list[float],
           alternative: str = "two-sided") -> tuple[float, float]:
    """(paired t-test p, Wilcoxon signed-rank p) of matched values a[i] ↔ b[i]."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 2:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t = stats.ttest_rel(a, b, alternative=alternative).pvalue
        try:
            w = stats.wilcoxon(a, b, alternative=alternative).pvalue
        except ValueError:  # all differences zero
            w = math.nan
    return float(t), float(w)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values: p_(k) · (m − k + 1), made monotone and capped at 1
    (NaN kept as NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if len(ok):
        order = ok[np.argsort(p[ok], kind="stable")]
        m = len(order)
        adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
        out[order] = adj
    return out.tolist()


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (scipy ``false_discovery_control``; NaN kept)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out.tolist()


def min_detectable_effect(n_a: int, n_b: int, alpha: float, sd: float,
                          alternative: str = "two-sided", power: float = 0.8) -> float:
    """Smallest |Δ| (metric units) a two-sample t-test detects with this power: the
    standardised effect from statsmodels ``TTestIndPower`` times the pooled SD."""
    if n_a < 2 or n_b < 2 or not math.isfinite(sd):
        return math.nan
    return _standardised_mde(n_a, n_b, alpha, alternative, power) * sd


@lru_cache(maxsize=4096)
def _standardised_mde(n_a: int, n_b: int, alpha: float, alternative: str, power: float) -> float:
    from statsmodels.stats.power import TTestIndPower

    alt = "two-sided" if alternative == "two-sided" else "larger"
    return float(TTestIndPower().solve_power(effect_size=None, nobs1=n_a, alpha=alpha,
                                             power=power, ratio=n_b / n_a, alternative=alt))


def pooled_sd(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """Pooled sample SD of two groups."""
    a, b = _finite(a), _finite(b)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return math.nan
    return math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
