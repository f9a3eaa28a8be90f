"""Trials nested in pre-training replicates: the unit of inference and the share of variance.

When a cell's encoder was pre-trained k times (stage ``replicates``) and every replicate was
evaluated with n trial seeds, the k·n trial values are not independent: trials of one
replicate share its checkpoint. A test that treats them as k·n independent values measures
fine-tuning noise around k checkpoints and can be confidently wrong about the pre-training
method. bench therefore tests replicate means (one value per pre-training run: Welch's test
on them is exact under normality for any split of variance between the levels, balanced or
not up to the weighting of unequal n) and reports how much of the variance is due to
pre-training:

- ICC(1) from the one-way random-effects ANOVA (Shrout & Fleiss 1979): with MSB and MSW the
  between- and within-replicate mean squares and n0 = (N − Σnᵢ²/N)/(k − 1) the effective
  replicate size, σ²_b = max(0, (MSB − MSW)/n0), σ²_w = MSW, ICC = σ²_b / (σ²_b + σ²_w);
- the effective number of independent trials N / (1 + (n̄ − 1)·ICC), n̄ = N / k (Kish's design
  effect).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def unit_means(values: np.ndarray | list[float], units: np.ndarray | list) -> np.ndarray:
    """(k,) mean of the finite values of each unit (units without a finite value dropped),
    in sorted unit order."""
    v = np.asarray(values, dtype=float)
    u = np.asarray(units)
    keep = np.isfinite(v)
    v, u = v[keep], u[keep]
    if not len(v):
        return np.array([], dtype=float)
    codes, idx = np.unique(u, return_inverse=True)
    sums = np.bincount(idx, weights=v, minlength=len(codes))
    counts = np.bincount(idx, minlength=len(codes))
    return sums / counts


@dataclass(frozen=True)
class Clustering:
    """How trials of one cell cluster in their pre-training replicates."""

    k: int
    """Replicates with at least one finite value."""
    n: int
    """Finite trial values."""
    icc: float
    sd_between: float
    sd_within: float

    @property
    def effective_n(self) -> float:
        """Independent trials the k·n values are worth (Kish: N / (1 + (n̄ − 1)·ICC))."""
        if self.k == 0 or not math.isfinite(self.icc):
            return math.nan
        return self.n / (1 + (self.n / self.k - 1) * self.icc)


def clustering(values: np.ndarray | list[float], units: np.ndarray | list) -> Clustering:
    """ICC(1) and variance components of the finite values grouped by ``units`` (NaN where
    they cannot be estimated: fewer than 2 units, or no replicate with 2 values)."""
    v = np.asarray(values, dtype=float)
    u = np.asarray(units)
    keep = np.isfinite(v)
    v, u = v[keep], u[keep]
    n = len(v)
    nan = math.nan
    if n == 0:
        return Clustering(0, 0, nan, nan, nan)
    codes, idx = np.unique(u, return_inverse=True)
    k = len(codes)
    if k < 2 or n <= k:
        return Clustering(k, n, nan, nan, nan)
    counts = np.bincount(idx, minlength=k).astype(float)
    means = np.bincount(idx, weights=v, minlength=k) / counts
    grand = v.mean()
    msb = float(np.sum(counts * (means - grand) ** 2) / (k - 1))
    msw = float(np.sum((v - means[idx]) ** 2) / (n - k))
    n0 = (n - np.sum(counts**2) / n) / (k - 1)
    var_b = max(0.0, (msb - msw) / n0)
    total = var_b + msw
    icc = var_b / total if total > 0 else nan
    return Clustering(k, n, icc, math.sqrt(var_b), math.sqrt(msw))
