"""Per-cell reliability: every finished trial's test predictions pooled into the top-label
confidence bins of the expected calibration error (:mod:`bench.stats.calibration`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.stats.bootstrap import CasePredictions
from bench.stats.calibration import reliability


@dataclass(frozen=True)
class CellReliability:
    """One cell's reliability diagram.

    Attributes:
        n: (M,) predictions per confidence bin, over all trials.
        confidence: (M,) mean top-label confidence per bin (NaN where a bin is empty).
        accuracy: (M,) share of correct predictions per bin (NaN where empty).
        trials: trials pooled. cases: test cases per trial.
    """

    n: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    trials: int
    cases: int

    @property
    def ece(self) -> float:
        """The ECE of the pooled predictions (Σ_m n_m/N · |acc_m − conf_m|)."""
        full = self.n > 0
        gap = np.abs(self.accuracy[full] - self.confidence[full])
        return float((self.n[full] * gap).sum() / self.n.sum())


def cell_reliability(cases: dict[str, CasePredictions]) -> dict[str, CellReliability]:
    """Each cell's trials (S, N, C) pooled into one reliability diagram (probabilities as the
    trials stored them, in float16: the pooled ECE can differ from the mean of the trials' own
    ``ece`` in the last digits, and is the ECE of all S·N predictions, not a mean of S)."""
    out = {}
    for cell, cp in cases.items():
        if cp.probs is None:
            continue
        s, n_cases, c = cp.probs.shape
        probs = cp.probs.reshape(s * n_cases, c).astype(np.float64)
        n, conf, hits = reliability(probs, np.tile(cp.labels, s))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[cell] = CellReliability(n=n, confidence=np.where(n > 0, conf / n, np.nan),
                                        accuracy=np.where(n > 0, hits / n, np.nan),
                                        trials=s, cases=n_cases)
    return out
