"""Calibration of predicted probabilities: top-label reliability bins, the expected calibration
error, and two proper scoring rules (Brier, NLL). Lower is better for all three scores."""

from __future__ import annotations

import numpy as np

ECE_BINS = 15
"""Equal-width confidence bins of the expected calibration error (Guo et al. 2017, "On
Calibration of Modern Neural Networks", §2: M = 15)."""
_NLL_FLOOR = 1e-12
"""The smallest probability the NLL takes the log of (a wrong prediction with p = 0 would be ∞)."""


def bin_index(confidence: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """The equal-width bin of each confidence: bin m holds ((m−1)/M, m/M], the first also 0."""
    return np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-label reliability: per equal-width bin of the confidence max_c p_c
    (:func:`bin_index`), the number of cases (M,), their summed confidence (M,) and their
    number of correct predictions (M,)."""
    conf = probs.max(1).astype(np.float64)
    correct = (probs.argmax(1) == labels).astype(np.float64)
    idx = bin_index(conf, bins)
    n = np.bincount(idx, minlength=bins).astype(np.float64)
    return n, np.bincount(idx, conf, bins), np.bincount(idx, correct, bins)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """ECE = Σ_m |B_m|/N · |acc(B_m) − conf(B_m)| over ``bins`` equal-width bins of the
    top-label confidence (Guo et al. 2017, eq. 3) of (N, C) probabilities and (N,) labels."""
    n, conf, hits = reliability(probs, labels, bins)
    return float(np.abs(hits - conf).sum() / n.sum())


def brier_per_case(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) Σ_c (p_c − 1[y = c])² of each case."""
    onehot = np.eye(probs.shape[1])[labels]
    return ((probs.astype(np.float64) - onehot) ** 2).sum(1)


def nll_per_case(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) −log p_y of each case (p floored at 1e-12)."""
    p = probs.astype(np.float64)[np.arange(len(labels)), labels]
    return -np.log(np.maximum(p, _NLL_FLOOR))


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Brier's multi-class score: the mean over cases of Σ_c (p_c − 1[y = c])² (range [0, 2];
    Brier 1950, the original definition; sklearn's ``brier_score_loss(..., labels=…,
    scale_by_half=False)``)."""
    return float(brier_per_case(probs, labels).mean())


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class, −mean log p_y (natural log; p floored
    at 1e-12)."""
    return float(nll_per_case(probs, labels).mean())
