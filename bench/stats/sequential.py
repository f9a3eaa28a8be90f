"""Group-sequential boundaries (Lan–DeMets α-spending), repeated p-values and repeated CIs.

A design looks at the data K times, at information fractions ``0 < t_1 < … < t_K = 1``. Under
the null the standardised statistics (Z_1, …, Z_K) are jointly normal with
Corr(Z_j, Z_k) = √(t_j / t_k) (independent increments); the design rejects at look k when Z_k
crosses a boundary c_k. The boundaries spend the level α over the looks (Lan & DeMets 1983):
α(t_k) − α(t_{k−1}) is the probability of first crossing at look k, with

- O'Brien–Fleming-type spending α(t) = 2 − 2Φ(z_{1−α/2} / √t) (little α early, nearly all of it
  at the last look: the final boundary is close to the fixed design's);
- Pocock-type spending α(t) = α · ln(1 + (e − 1) t) (equal-ish boundaries at every look).

These are one-sided levels; a two-sided design at level α crosses on either side (|Z_k| ≥ c_k)
and spends α in all (Jennison & Turnbull 2000, §7.2; gsDesign's ``sfLDOF`` / ``sfLDPocock``).
The crossing probabilities are computed exactly by recursive numerical integration of the score
process S_k = Z_k √t_k on a grid (Armitage, McPherson & Rowe 1969; Jennison & Turnbull ch. 19).

Small samples: the data are tested with Welch's t, not a z, so a boundary is used as its
*nominal level* ν_k = 1 − Φ(c_k) (one-sided): look k rejects when the Welch p-value is at or
below ν_k (the significance-level approach, Jennison & Turnbull §3.8, whose level stays close to
α; checked by simulation in the tests).

Multiplicity: the *repeated p-value* of look k is the smallest level α' at which a design with
the same looks and spending would reject at look k (Jennison & Turnbull §9.1); the smallest over
the looks so far is a valid p-value of the whole sequence. Holm over a family's repeated p-values
is the group-sequential Holm procedure (Maurer & Bretz 2013, graphical approach with α-spending).
The repeated CI of look k is Δ ± t_{df}(1 − ν_k) · SE at the two-sided ν_k of level α: it covers
the true Δ at every look at once with probability ≥ 1 − α.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import optimize, special

SPENDINGS = ("obrien_fleming", "pocock")
_GRID = 401
"""Grid points per look of the recursive integration (Simpson's rule)."""
_LEVELS = np.geomspace(1e-9, 0.5, 160)
"""One-sided levels at which nominal levels are tabulated for the repeated p-values."""


def spent(t: np.ndarray | float, alpha: float, spending: str) -> np.ndarray:
    """Cumulative one-sided α spent by information fraction ``t`` (shape of ``t``)."""
    t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    if spending == "obrien_fleming":
        z = special.ndtri(1 - alpha / 2)
        with np.errstate(divide="ignore"):
            return np.where(t > 0, 2 - 2 * special.ndtr(z / np.sqrt(np.maximum(t, 1e-300))), 0.0)
    if spending == "pocock":
        return alpha * np.log1p((math.e - 1) * t)
    raise ValueError(f"unknown spending function {spending!r}; one of {', '.join(SPENDINGS)}")


def _simpson(lo: float, hi: float, n: int = _GRID) -> tuple[np.ndarray, np.ndarray]:
    """Points and Simpson weights on [lo, hi] (``n`` odd)."""
    x = np.linspace(lo, hi, n)
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return x, w * (hi - lo) / (3 * (n - 1))


def _phi(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def boundaries(fractions: tuple[float, ...], alpha: float, spending: str = "obrien_fleming",
               sides: int = 1) -> np.ndarray:
    """z boundaries c_1..c_K (shape (K,)) of a design at (one- or two-sided) level ``alpha``:
    look k crosses when Z_k ≥ c_k (``sides=1``) or |Z_k| ≥ c_k (``sides=2``). A look that
    would spend nothing has boundary +inf."""
    return np.array(_boundaries(tuple(float(f) for f in fractions), float(alpha), spending,
                                int(sides)))


@functools.lru_cache(maxsize=4096)
def _boundaries(fractions: tuple[float, ...], alpha: float, spending: str,
                sides: int) -> tuple[float, ...]:
    t = np.asarray(fractions, dtype=float)
    if t.ndim != 1 or not len(t) or np.any(np.diff(t) <= 0) or t[0] <= 0 or t[-1] > 1 + 1e-12:
        raise ValueError(f"information fractions must increase within (0, 1]: {fractions}")
    per_side = alpha / sides
    cum = spent(t, per_side, spending) * sides
    inc = np.diff(np.concatenate([[0.0], cum]))
    out = np.empty(len(t))
    mass = np.ones(1)  # the sub-density of S_{k-1} times its weights, on the points ``x``
    x = np.zeros(1)
    for k, tk in enumerate(t):
        sk = math.sqrt(tk)
        sd = math.sqrt(tk - t[k - 1]) if k else sk  # S_k − S_{k-1}, from S_0 = 0 at look 1

        def cross(c: float, mass: np.ndarray = mass, x: np.ndarray = x, sd: float = sd,
                  sk: float = sk) -> float:
            """P(no crossing before look k, crossing at it) with boundary ``c``."""
            up = special.ndtr((x - c * sk) / sd)
            if sides == 2:
                up = up + special.ndtr((-c * sk - x) / sd)
            return float(np.sum(mass * up))

        target = inc[k]
        if target <= 0 or cross(40.0) >= target:
            out[k] = math.inf
        else:
            out[k] = optimize.brentq(lambda c, f=cross, a=target: f(c) - a,
                                     -40.0 if sides == 1 else 0.0, 40.0, xtol=1e-12, rtol=1e-14)
        c = min(out[k], 12.0)
        lo = -c * sk if sides == 2 else -12.0 * sk
        xn, wn = _simpson(lo, c * sk)
        dens = mass @ (_phi((xn[None, :] - x[:, None]) / sd) / sd)
        mass, x = wn * dens, xn
    return tuple(float(c) for c in out)


def nominal_levels(fractions: tuple[float, ...], alpha: float,
                   spending: str = "obrien_fleming", sides: int = 1) -> np.ndarray:
    """ν_k: the p-value (one-sided, or two-sided for ``sides=2``) at or below which look k
    rejects (shape (K,))."""
    return sides * special.ndtr(-boundaries(fractions, alpha, spending, sides))


@functools.lru_cache(maxsize=64)
def _table(fractions: tuple[float, ...], spending: str) -> np.ndarray:
    """log ν_k(α') of one-sided designs at the levels :data:`_LEVELS` (shape (L, K))."""
    rows = [nominal_levels(fractions, a, spending, 1) for a in _LEVELS]
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(rows))


def repeated_p(p: float, look: int, fractions: tuple[float, ...],
               spending: str = "obrien_fleming", sides: int = 1) -> float:
    """The repeated p-value of look ``look`` (0-based) whose nominal p-value is ``p`` (one- or
    two-sided as ``sides``): the smallest level at which the design rejects there. Tabulated
    on one-sided levels 1e-9 … 0.5 and interpolated in log–log (relative error below 1e-3);
    a p-value that no level up to 0.5 (one-sided) rejects is 1; NaN stays NaN."""
    if not math.isfinite(p):
        return math.nan
    q = p / sides  # the one-sided nominal p-value of the better side
    col = _table(tuple(fractions), spending)[:, look]
    ok = np.isfinite(col)
    if q <= 0:
        return 0.0
    lq = math.log(q)
    if not ok.any() or lq > col[ok][-1]:
        return 1.0
    xs, ls = col[ok], np.log(_LEVELS[ok])
    if lq <= xs[0]:  # below the table: the tail is linear in log–log
        slope = (ls[1] - ls[0]) / (xs[1] - xs[0])
        return float(min(1.0, sides * math.exp(ls[0] + slope * (lq - xs[0]))))
    return float(min(1.0, sides * math.exp(np.interp(lq, xs, ls))))


def repeated_ci(delta: float, se: float, df: float, look: int, fractions: tuple[float, ...],
                alpha: float, spending: str = "obrien_fleming", alternative: str = "two-sided"
                ) -> tuple[float, float]:
    """Repeated confidence interval (or one-sided bound) of Δ at look ``look``: the Welch
    interval at the look's nominal level of a level-α design."""
    if not (math.isfinite(se) and se > 0 and math.isfinite(df)):
        return math.nan, math.nan
    sides = 2 if alternative == "two-sided" else 1
    nu = float(nominal_levels(tuple(fractions), alpha, spending, sides)[look])
    q = float(special.stdtrit(df, 1 - nu / sides))
    if alternative == "greater":
        return delta - q * se, math.inf
    if alternative == "less":
        return -math.inf, delta + q * se
    return delta - q * se, delta + q * se


def conditional_power(p_one_sided: float, look: int, fractions: tuple[float, ...],
                      alpha: float, spending: str = "obrien_fleming", sides: int = 1) -> float:
    """Probability that the last look crosses its boundary given look ``look``'s one-sided
    p-value, if the effect estimated so far is the true one ("current trend"; Lan & Wittes
    1988): 1 − Φ((c_K − Z_k / √t_k) / √(1 − t_k)). 1 at the last look when it crossed."""
    t = np.asarray(fractions, dtype=float)
    c_final = boundaries(tuple(fractions), alpha, spending, sides)[-1]
    z = float(special.ndtri(1 - min(max(p_one_sided, 1e-300), 1 - 1e-16)))
    tk = t[look]
    if tk >= 1:
        return float(z >= c_final)
    return float(special.ndtr(-(c_final - z / math.sqrt(tk)) / math.sqrt(1 - tk)))
