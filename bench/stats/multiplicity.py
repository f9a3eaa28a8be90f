"""Multiplicity corrections over a family of declared contrasts.

Every declared contrast counts in the family size m, also one whose p-value could not be
computed (too few finite values, a degenerate contrast): leaving it out would make the others
look stronger than the design allows. Such a contrast is treated as p = 1 for the adjustment
and keeps NaN as its own adjusted value.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def _filled(pvalues: list[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pvalues, dtype=float)
    ok = np.isfinite(p)
    return np.where(ok, p, 1.0), ok


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values: p_(k) · (m − k + 1), made monotone and capped at 1;
    m counts every entry (NaN ones as p = 1; they stay NaN). Equal to statsmodels
    ``multipletests(method="holm")`` when nothing is NaN."""
    p, ok = _filled(pvalues)
    m = len(p)
    out = np.full(m, np.nan)
    if m:
        order = np.argsort(p, kind="stable")
        adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
        out[order] = adj
        out[~ok] = np.nan
    return out.tolist()


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (scipy ``false_discovery_control``); m counts every
    entry (NaN ones as p = 1; they stay NaN)."""
    p, ok = _filled(pvalues)
    out = np.full(len(p), np.nan)
    if len(p):
        out = np.asarray(stats.false_discovery_control(p, method="bh"), dtype=float)
        out[~ok] = np.nan
    return out.tolist()


def holm_levels(m: int, alpha: float) -> float:
    """The level the strongest contrast of a Holm family of ``m`` must beat (α / m): a design
    figure such as a detectable effect is computed at it, since no contrast is declared at a
    looser level unless another in its family was declared first."""
    return alpha / max(m, 1)
