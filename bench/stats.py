"""Statistics over trials, on scipy and statsmodels (no hand-rolled distributions).

Per cell: n, mean, sample SD (n − 1), 95 % t-CI of the mean, median, IQR.
Per contrast A − B: Δ with its Welch–Satterthwaite CI, t, df and p of Welch's unequal-variance
t-test (two-sided, or one-sided when declared); Hedges' g with an approximate CI (Hedges & Olkin
1985: SE² = (nA + nB)/(nA·nB) + g²/(2(nA + nB))); P(A > B), the probability of superiority
(Mann–Whitney U / (nA·nB), ties counted ½); TOST equivalence within ±margin (as statsmodels
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


def _welch_t(ma: float, va: float, na: int, mb: float, vb: float, nb: int, shift: float = 0.0
             ) -> tuple[float, float, float]:
    """(t, df, SE) of Welch's test of mean(A) − mean(B) − shift from the sample moments."""
    sa, sb = va / na, vb / nb
    se = math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / (sa**2 / (na - 1) + sb**2 / (nb - 1)) if se > 0 else math.nan
    t = (ma - mb - shift) / se if se > 0 else math.copysign(math.inf, ma - mb - shift)
    return t, df, se


def _p_from_t(t: float, df: float, alternative: str) -> float:
    if not math.isfinite(df):
        return math.nan
    if alternative == "greater":
        return float(stats.t.sf(t, df))
    if alternative == "less":
        return float(stats.t.cdf(t, df))
    return float(min(1.0, 2 * stats.t.sf(abs(t), df)))


def welch(a: np.ndarray | list[float], b: np.ndarray | list[float],
          alternative: str = "two-sided", confidence: float = 0.95) -> WelchResult:
    """Welch's unequal-variance t-test, as ``scipy.stats.ttest_ind(a, b, equal_var=False)``
    (checked against it in the tests); ``greater`` tests mean(A) > mean(B).

    Computed from the sample moments with scipy's t distribution (one call per contrast instead
    of scipy's generic wrapper, which matters for reports of thousands of contrasts). The CI is
    the Welch–Satterthwaite interval for Δ (one-sided bounds for one-sided tests).
    """
    a, b = _finite(a), _finite(b)
    na, nb = len(a), len(b)
    nan = math.nan
    if na < 2 or nb < 2:
        return WelchResult(nan, nan, nan, nan, nan, nan, alternative)
    ma, mb = float(a.mean()), float(b.mean())
    t, df, se = _welch_t(ma, float(a.var(ddof=1)), na, mb, float(b.var(ddof=1)), nb)
    delta = ma - mb
    if se == 0:
        return WelchResult(delta, delta, delta, t, nan, nan, alternative)
    p = _p_from_t(t, df, alternative)
    if alternative == "two-sided":
        q = float(stats.t.ppf(0.5 + confidence / 2, df))
        lo, hi = delta - q * se, delta + q * se
    elif alternative == "greater":
        lo, hi = delta - float(stats.t.ppf(confidence, df)) * se, math.inf
    else:
        lo, hi = -math.inf, delta + float(stats.t.ppf(confidence, df)) * se
    return WelchResult(delta, lo, hi, t, df, p, alternative)


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
    """P(A > B) + ½ P(A = B) for a random pair (= Mann–Whitney U / (nA · nB))."""
    a, b = _finite(a), _finite(b)
    if not len(a) or not len(b):
        return math.nan
    sb = np.sort(b)
    below = np.searchsorted(sb, a, side="left")
    equal = np.searchsorted(sb, a, side="right") - below
    return float((below.sum() + 0.5 * equal.sum()) / (len(a) * len(b)))


def tost(a: np.ndarray | list[float], b: np.ndarray | list[float], margin: float) -> float:
    """p-value of the TOST equivalence test of |Δ| < margin with unequal variances: the larger
    of the two one-sided Welch tests Δ > −margin and Δ < margin (as statsmodels
    ``ttost_ind(usevar="unequal")``, checked against it in the tests)."""
    a, b = _finite(a), _finite(b)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return math.nan
    ma, va, mb, vb = float(a.mean()), float(a.var(ddof=1)), float(b.mean()), float(b.var(ddof=1))
    t_lo, df, se = _welch_t(ma, va, na, mb, vb, nb, -margin)
    t_hi, _, _ = _welch_t(ma, va, na, mb, vb, nb, margin)
    if se == 0:
        return 0.0 if abs(ma - mb) < margin else 1.0
    return max(_p_from_t(t_lo, df, "greater"), _p_from_t(t_hi, df, "less"))


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
