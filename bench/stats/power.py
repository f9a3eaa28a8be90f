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

import numpy as np
from scipy import special

from bench.stats.twosample import Moments, welch_df


def _cdf(df: np.ndarray, nc: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(T' ≤ x) of a noncentral t (``scipy.special.nctdtr``, the function behind
    ``scipy.stats.nct``); where it fails in a far tail the value is below 1e-12 and is taken
    from the side it is on."""
    v = np.asarray(special.nctdtr(df, nc, x), dtype=float)
    bad = ~np.isfinite(v)
    return np.where(bad, (x > nc).astype(float), v) if bad.any() else v


def _power_nc(nc: np.ndarray, df: np.ndarray, crit: np.ndarray, two_sided: np.ndarray
              ) -> np.ndarray:
    """Power at noncentrality ``nc``: P(T' > c), plus P(T' < −c) when two-sided."""
    upper = 1.0 - _cdf(df, nc, crit)
    return upper + np.where(two_sided, _cdf(df, nc, -crit), 0.0)


def _critical(df: np.ndarray, alpha: np.ndarray, two_sided: np.ndarray) -> np.ndarray:
    return np.asarray(special.stdtrit(df, 1 - np.where(two_sided, alpha / 2, alpha)),
                      dtype=float)


def welch_power(delta: float, a: Moments, b: Moments, alpha: float,
                alternative: str = "two-sided") -> float:
    """Power of Welch's test to declare a true difference |Δ| = ``delta`` in the tested
    direction, for arms with these SDs and sizes."""
    if a.n < 2 or b.n < 2:
        return math.nan
    se = math.sqrt(a.var_of_mean + b.var_of_mean)
    if not se > 0:
        return math.nan
    df = np.array([welch_df(a, b)])
    two = np.array([alternative == "two-sided"])
    crit = _critical(df, np.array([alpha]), two)
    return float(_power_nc(np.array([abs(delta) / se]), df, crit, two)[0])


def _solve_nc(df: np.ndarray, alpha: np.ndarray, two_sided: np.ndarray, power: float
              ) -> np.ndarray:
    """The noncentrality at which each test has ``power``: a vectorised Illinois (regula
    falsi) search on [0, hi], where power is increasing in nc (relative tolerance 1e-12)."""
    crit = _critical(df, alpha, two_sided)

    def f(nc: np.ndarray) -> np.ndarray:
        return _power_nc(nc, df, crit, two_sided) - power

    z = special.ndtri(1 - np.where(two_sided, alpha / 2, alpha)) + special.ndtri(power)
    lo, hi = np.zeros_like(df), np.maximum(1.5 * z, 1.0)
    f_lo, f_hi = f(lo), f(hi)
    for _ in range(60):  # widen until the root is bracketed
        short = f_hi < 0
        if not short.any():
            break
        hi = np.where(short, 2 * hi, hi)
        f_hi = np.where(short, f(hi), f_hi)
    side = np.zeros(len(df))
    for _ in range(100):
        x = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        x = np.where(np.isfinite(x), x, (lo + hi) / 2)
        fx = f(x)
        right = fx > 0
        hi, f_hi = np.where(right, x, hi), np.where(right, fx, f_hi)
        lo, f_lo = np.where(right, lo, x), np.where(right, f_lo, fx)
        # Illinois: halve the stale end's value when the same end moves twice
        f_lo = np.where(right & (side > 0), f_lo / 2, f_lo)
        f_hi = np.where(~right & (side < 0), f_hi / 2, f_hi)
        side = np.where(right, 1, -1)
        if np.all(np.abs(fx) < 1e-13) or np.all(hi - lo < 1e-12 * (1 + hi)):
            break
    return x


def min_detectable_effects(pairs: list[tuple[Moments, Moments]], alphas: list[float],
                           alternatives: list[str], power: float = 0.8) -> np.ndarray:
    """Smallest |Δ| (metric units) Welch's test at each level declares with ``power``, for
    arms with these SDs and sizes (one root search for all of them); NaN where an arm has
    fewer than 2 values or both SDs are zero."""
    out = np.full(len(pairs), np.nan)
    ok, se, df = [], [], []
    for i, (a, b) in enumerate(pairs):
        if a.n >= 2 and b.n >= 2 and math.isfinite(a.sd) and math.isfinite(b.sd):
            s = math.sqrt(a.var_of_mean + b.var_of_mean)
            if s > 0:
                ok.append(i)
                se.append(s)
                df.append(welch_df(a, b))
    if ok:
        idx = np.array(ok)
        nc = _solve_nc(np.array(df), np.asarray(alphas, dtype=float)[idx],
                       np.array([alternatives[i] == "two-sided" for i in ok]), power)
        out[idx] = nc * np.array(se)
    return out


def min_detectable_effect(a: Moments, b: Moments, alpha: float,
                          alternative: str = "two-sided", power: float = 0.8) -> float:
    """Smallest |Δ| (metric units) Welch's test at level ``alpha`` declares with ``power``,
    for arms with these SDs and sizes; NaN when an arm has fewer than 2 values or both SDs
    are zero."""
    return float(min_detectable_effects([(a, b)], [alpha], [alternative], power)[0])
