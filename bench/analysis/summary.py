"""Tests of summary statistics (a paper's table), as ``bench stats welch`` prints them."""

from __future__ import annotations

import math

from bench.stats import Moments, hedges_moments, tost_moments, welch_moments


def _json_number(x: float | bool) -> float | str | bool | None:
    """JSON has no NaN or infinity: NaN → null, ±∞ → "inf" / "-inf"."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def welch_summary(a: tuple[float, float, int], b: tuple[float, float, int],
                  alternative: str = "two-sided", margin: float | None = None,
                  confidence: float = 0.95) -> dict:
    """Welch's test of A − B from (mean, sample SD, n) of each arm: Δ, its CI, t, df, p,
    Hedges' g with its CI, and the TOST p of |Δ| < margin when a margin is given; JSON-ready
    (NaN → null, ±∞ → "inf"/"-inf")."""
    ma, mb = Moments(*a), Moments(*b)
    res = welch_moments(ma, mb, alternative, confidence)
    g, g_lo, g_hi = hedges_moments(ma, mb, confidence)
    out = {"delta": res.delta, "ci_low": res.ci_low, "ci_high": res.ci_high, "t": res.t,
           "df": res.df, "p": res.p, "alternative": alternative, "confidence": confidence,
           "hedges_g": g, "g_low": g_lo, "g_high": g_hi, "degenerate": res.degenerate}
    if margin is not None:
        out["margin"] = margin
        out["tost_p"] = tost_moments(ma, mb, margin)
    return {k: _json_number(v) for k, v in out.items()}
