"""Power of Welch's test and the smallest difference it detects.

Power of Welch's test of Δ with arm SDs (σA, σB) and sizes (nA, nB) at level α: the test
statistic follows, approximately, a noncentral t with the Welch–Satterthwaite df and
noncentrality Δ / √(σA²/nA + σB²/nB) (Satterthwaite 1946; the usual approximation, checked
against simulated Welch tests in the tests). One-sided for ``greater``/``less``; two-sided adds
the far tail. The minimum detectable effect (MDE) solves power(Δ) = target for Δ > 0, at the
level the verdict actually uses (``bench.stats.multiplicity.holm_levels``).
"""

from __future__ import annotations

import math
from functools import lru_cache

from scipy import optimize, stats

from bench.stats.welch import Moments, welch_df


def _upper(crit: float, df: float, nc: float) -> float:
    """P(T' > crit) for a noncentral t; scipy's far tails can come out NaN, where they are
    taken from the complementary function or, when that fails too, are below 1e-12."""
    v = float(stats.nct.sf(crit, df, nc))
    if not math.isfinite(v):
        v = 1.0 - float(stats.nct.cdf(crit, df, nc))
    return v if math.isfinite(v) else float(nc > crit)


def _power_nc(nc: float, df: float, alpha: float, two_sided: bool) -> float:
    if two_sided:
        crit = float(stats.t.ppf(1 - alpha / 2, df))
        return _upper(crit, df, nc) + _upper(crit, df, -nc)  # P(T' < −c | nc) = P(T' > c | −nc)
    crit = float(stats.t.ppf(1 - alpha, df))
    return _upper(crit, df, nc)


def welch_power(delta: float, a: Moments, b: Moments, alpha: float,
                alternative: str = "two-sided") -> float:
    """Power of Welch's test to declare a true difference |Δ| = ``delta`` in the tested
    direction, for arms with these SDs and sizes."""
    if a.n < 2 or b.n < 2:
        return math.nan
    se = math.sqrt(a.var_of_mean + b.var_of_mean)
    if not se > 0:
        return math.nan
    return _power_nc(abs(delta) / se, welch_df(a, b), alpha, alternative == "two-sided")


@lru_cache(maxsize=65536)
def _nc_for_power(df: float, alpha: float, two_sided: bool, power: float) -> float:
    """The noncentrality at which the test has this power (monotone in nc: a root search)."""
    z = stats.norm.ppf(1 - (alpha / 2 if two_sided else alpha)) + stats.norm.ppf(power)
    hi = max(2.0 * z, 1.0)
    while _power_nc(hi, df, alpha, two_sided) < power:
        hi *= 2
    return float(optimize.brentq(lambda nc: _power_nc(nc, df, alpha, two_sided) - power,
                                 0.0, hi, xtol=1e-10, rtol=1e-12))


def min_detectable_effect(a: Moments, b: Moments, alpha: float,
                          alternative: str = "two-sided", power: float = 0.8) -> float:
    """Smallest |Δ| (metric units) Welch's test at level ``alpha`` declares with ``power``,
    for arms with these SDs and sizes; NaN when an arm has fewer than 2 values or both SDs
    are zero."""
    if a.n < 2 or b.n < 2 or not (math.isfinite(a.sd) and math.isfinite(b.sd)):
        return math.nan
    se = math.sqrt(a.var_of_mean + b.var_of_mean)
    if not se > 0:
        return math.nan
    df = welch_df(a, b)
    return _nc_for_power(df, alpha, alternative == "two-sided", power) * se
