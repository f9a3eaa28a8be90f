"""Summaries and two-sample tests of per-unit values (trials, or pre-training replicates).

Per cell: n, mean, sample SD (n − 1), 95 % t-CI of the mean, median, quartiles.
Per contrast A − B: Δ with its Welch–Satterthwaite CI, t, df and p of Welch's unequal-variance
t-test (two-sided, or one-sided when declared); Hedges' g with an approximate CI (Hedges & Olkin
1985: SE² = (nA + nB)/(nA·nB) + g²/(2(nA + nB))); P(A > B), the probability of superiority
(Mann–Whitney U / (nA·nB), ties counted ½); TOST equivalence within ±margin (as statsmodels
``ttost_ind``, unequal variances); a paired t-test and Wilcoxon signed-rank test of matched
values. Every test has a form that takes summary statistics (mean, SD, n), so a published table
can be tested as well as raw values (``bench stats welch``).

Non-finite values are never used (callers count what was dropped). A contrast whose arms both
have zero variance is *degenerate*: Δ is exact on these trials, but there is nothing to test, so
t, df, p and the CI are NaN and ``degenerate`` is set.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

Values = np.ndarray | list[float]


def finite(x: Values) -> np.ndarray:
    """The finite values of ``x`` as a float array."""
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


def summarize(values: Values, confidence: float = 0.95) -> Summary:
    """Summary of the finite values (NaN and ±inf dropped)."""
    v = finite(values)
    n = len(v)
    nan = math.nan
    if n == 0:
        return Summary(0, nan, nan, nan, nan, nan, nan, nan)
    mean = float(v.mean())
    sd = float(v.std(ddof=1)) if n > 1 else nan
    if n > 1 and sd > 0:
        lo, hi = stats.t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
    elif n > 1:  # constant values: the mean is exact on these trials
        lo = hi = mean
    else:
        lo = hi = nan
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return Summary(n, mean, sd, float(lo), float(hi), float(med), float(q1), float(q3))


@dataclass(frozen=True)
class Moments:
    """(mean, sample SD, n) of one arm: all a Welch test needs."""

    mean: float
    sd: float
    n: int

    @classmethod
    def of(cls, values: Values) -> Moments:
        v = finite(values)
        if len(v) == 0:
            return cls(math.nan, math.nan, 0)
        return cls(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v))

    @property
    def var_of_mean(self) -> float:
        return self.sd**2 / self.n


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
    degenerate: bool = False
    """Both arms have zero variance: Δ is exact, no test is possible."""


def welch_df(a: Moments, b: Moments) -> float:
    """Welch–Satterthwaite degrees of freedom."""
    sa, sb = a.var_of_mean, b.var_of_mean
    return (sa + sb) ** 2 / (sa**2 / (a.n - 1) + sb**2 / (b.n - 1))


def _p_from_t(t: float, df: float, alternative: str) -> float:
    """p-value of a t statistic (scipy.special's Student t, the functions behind
    ``scipy.stats.t``, called directly: a report computes thousands of them)."""
    if alternative == "greater":
        return float(special.stdtr(df, -t))
    if alternative == "less":
        return float(special.stdtr(df, t))
    return float(min(1.0, 2 * special.stdtr(df, -abs(t))))


def _t_quantile(q: float, df: float) -> float:
    return float(special.stdtrit(df, q))


def welch_moments(a: Moments, b: Moments, alternative: str = "two-sided",
                  confidence: float = 0.95) -> WelchResult:
    """Welch's test from summary statistics (``scipy.stats.ttest_ind_from_stats`` with
    ``equal_var=False``; checked against it in the tests). The CI is the Welch–Satterthwaite
    interval of Δ (a one-sided bound for a one-sided test)."""
    nan = math.nan
    if a.n < 2 or b.n < 2 or not (math.isfinite(a.sd) and math.isfinite(b.sd)):
        return WelchResult(nan, nan, nan, nan, nan, nan, alternative)
    delta = a.mean - b.mean
    se = math.sqrt(a.var_of_mean + b.var_of_mean)
    if se == 0:
        return WelchResult(delta, nan, nan, nan, nan, nan, alternative, degenerate=True)
    df = welch_df(a, b)
    t = delta / se
    p = _p_from_t(t, df, alternative)
    if alternative == "two-sided":
        q = _t_quantile(0.5 + confidence / 2, df)
        lo, hi = delta - q * se, delta + q * se
    elif alternative == "greater":
        lo, hi = delta - _t_quantile(confidence, df) * se, math.inf
    else:
        lo, hi = -math.inf, delta + _t_quantile(confidence, df) * se
    return WelchResult(delta, lo, hi, t, df, p, alternative)


def welch(a: Values, b: Values, alternative: str = "two-sided",
          confidence: float = 0.95) -> WelchResult:
    """Welch's unequal-variance t-test of the finite values, as
    ``scipy.stats.ttest_ind(a, b, equal_var=False)``; ``greater`` tests mean(A) > mean(B)."""
    return welch_moments(Moments.of(a), Moments.of(b), alternative, confidence)


def tost_moments(a: Moments, b: Moments, margin: float) -> float:
    """p-value of the TOST equivalence test of |Δ| < margin with unequal variances: the larger
    of the one-sided Welch tests Δ > −margin and Δ < margin (as statsmodels
    ``ttost_ind(usevar="unequal")``). NaN when degenerate or too small."""
    if a.n < 2 or b.n < 2 or not (math.isfinite(a.sd) and math.isfinite(b.sd)):
        return math.nan
    se = math.sqrt(a.var_of_mean + b.var_of_mean)
    if se == 0:
        return math.nan
    df = welch_df(a, b)
    delta = a.mean - b.mean
    return max(_p_from_t((delta + margin) / se, df, "greater"),
               _p_from_t((delta - margin) / se, df, "less"))


def tost(a: Values, b: Values, margin: float) -> float:
    """TOST equivalence p-value of the finite values (see :func:`tost_moments`)."""
    return tost_moments(Moments.of(a), Moments.of(b), margin)


def hedges_moments(a: Moments, b: Moments, confidence: float = 0.95
                   ) -> tuple[float, float, float]:
    """(g, CI low, CI high): bias-corrected standardised mean difference (pooled SD)."""
    na, nb = a.n, b.n
    if na < 2 or nb < 2:
        return math.nan, math.nan, math.nan
    pooled = math.sqrt(((na - 1) * a.sd**2 + (nb - 1) * b.sd**2) / (na + nb - 2))
    if not pooled > 0:
        return math.nan, math.nan, math.nan
    g = (1 - 3 / (4 * (na + nb) - 9)) * (a.mean - b.mean) / pooled
    se = math.sqrt((na + nb) / (na * nb) + g**2 / (2 * (na + nb)))
    z = float(special.ndtri(0.5 + confidence / 2))
    return float(g), float(g - z * se), float(g + z * se)


def hedges_g(a: Values, b: Values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Hedges' g of the finite values with its approximate CI."""
    return hedges_moments(Moments.of(a), Moments.of(b), confidence)


def prob_superiority(a: Values, b: Values) -> float:
    """P(A > B) + ½ P(A = B) for a random pair (= Mann–Whitney U / (nA · nB))."""
    a, b = finite(a), finite(b)
    if not len(a) or not len(b):
        return math.nan
    sb = np.sort(b)
    below = np.searchsorted(sb, a, side="left")
    equal = np.searchsorted(sb, a, side="right") - below
    return float((below.sum() + 0.5 * equal.sum()) / (len(a) * len(b)))


def paired(a: Values, b: Values, alternative: str = "two-sided") -> tuple[float, float]:
    """(paired t-test p, Wilcoxon signed-rank p) of matched values a[i] ↔ b[i] (pairs with a
    non-finite member dropped; NaN when every difference is zero)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    d = a - b
    if len(a) < 2 or np.all(d == 0):
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t = stats.ttest_rel(a, b, alternative=alternative).pvalue
        try:
            w = stats.wilcoxon(a, b, alternative=alternative).pvalue
        except ValueError:  # all differences zero
            w = math.nan
    return float(t), float(w)


def pooled_sd(a: Values, b: Values) -> float:
    """Pooled sample SD of two groups."""
    ma, mb = Moments.of(a), Moments.of(b)
    if ma.n < 2 or mb.n < 2:
        return math.nan
    return math.sqrt(((ma.n - 1) * ma.sd**2 + (mb.n - 1) * mb.sd**2) / (ma.n + mb.n - 2))
