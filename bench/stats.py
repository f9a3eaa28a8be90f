"""Statistics over trials: per-cell summaries and Welch's t-test for contrasts (scipy)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Summary:
    """Per-cell summary of one metric. ``sd`` is the sample SD (n − 1); CI is the 95 % t-CI."""

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    median: float


def summarize(values: np.ndarray, confidence: float = 0.95) -> Summary:
    """Summary of finite values (NaN dropped)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    mean = float(v.mean())
    sd = float(v.std(ddof=1)) if n > 1 else math.nan
    if n > 1:
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
        lo, hi = mean - half, mean + half
    else:
        lo = hi = math.nan
    return Summary(n, mean, sd, lo, hi, float(np.median(v)))


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


def welch(a: np.ndarray, b: np.ndarray, alternative: str = "two-sided",
          confidence: float = 0.95) -> WelchResult:
    """``scipy.stats.ttest_ind(a, b, equal_var=False)``; ``greater`` tests mean(A) > mean(B).

    The CI is the Welch–Satterthwaite interval for Δ (one-sided bounds for one-sided tests).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        nan = math.nan
        return WelchResult(nan, nan, nan, nan, nan, nan, alternative)
    with warnings.catch_warnings():  # identical samples: scipy warns, t is ±inf or NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
        ci = res.confidence_interval(confidence_level=confidence)
    return WelchResult(float(a.mean() - b.mean()), float(ci.low), float(ci.high),
                       float(res.statistic), float(res.df), float(res.pvalue), alternative)
