"""Case-level evidence: a paired bootstrap over test groups (patients, lesions).

Every trial of a cell is tested on the same test set, so the seed-level CI says nothing about
new patients. Resampling the test set's groups with replacement (Efron & Tibshirani 1993,
ch. 6; clustered by group because images of one lesion are not independent) answers that: in
each of B resamples, each group g is drawn c_bg times, the metric of every trial is computed
with case weights c_b,group(i), averaged over the cell's seeds, and A − B is taken with the
*same* resample for both cells (a paired design: both were tested on the same cases).
The percentile interval of the B differences is the CI "for new patients"; the bootstrap
p-value of Δ ≤ 0 (one-sided) is (1 + #{Δ*_b ≤ 0}) / (B + 1), two-sided twice the smaller tail.

Weighted metrics follow sklearn's definitions with ``sample_weight`` (checked in the tests):
accuracy, balanced accuracy (mean recall over the classes present), F1 weighted by support,
macro F1 over every class (zero_division = 0), macro one-vs-rest ROC-AUC over the classes
present; ece, brier and nll as case-weighted calibration bins and mean losses
(:mod:`bench.stats.calibration`). Confusion-based metrics are computed from per-group
sufficient statistics, so a resample costs one matrix product; AUROC and the calibration
metrics need the cases themselves (O(B·N) per seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.stats.calibration import ECE_BINS, bin_index, brier_per_case, nll_per_case

BOOTSTRAP_METRICS = ("accuracy", "balanced_accuracy", "f1_weighted", "f1_macro", "auroc_macro",
                     "ece", "brier", "nll")
_FROM_PROBS = ("auroc_macro", "ece", "brier", "nll")
"""Metrics computed from the probabilities (the others from the confusion counts)."""
_CHUNK = 256
"""Resamples processed at once (bounds memory on test sets of tens of thousands of cases)."""


@dataclass
class CasePredictions:
    """One cell's finished trials on one test set, cases in a common order.

    Attributes:
        labels: (N,) int true class of each case.
        groups: (N,) int group code of each case in [0, G) (patient / lesion; the case itself
            when the data has no groups).
        pred: (S, N) int predicted class, one row per trial seed.
        probs: (S, N, C) predicted probabilities (needed for AUROC, ece, brier, nll), or None.
        n_classes: C.
    """

    labels: np.ndarray
    groups: np.ndarray
    pred: np.ndarray
    probs: np.ndarray | None
    n_classes: int

    @property
    def n_groups(self) -> int:
        return int(self.groups.max()) + 1 if len(self.groups) else 0


def resample_counts(n_groups: int, resamples: int, seed: int) -> np.ndarray:
    """(B, G) how often each group is drawn in each resample (G draws with replacement)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(resamples, n_groups))
    flat = (draws + np.arange(resamples)[:, None] * n_groups).ravel()
    return np.bincount(flat, minlength=resamples * n_groups).reshape(resamples, n_groups)


def _sufficient(cp: CasePredictions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group: true counts (G, C), correct counts (G, S·C) and predicted counts (G, S·C)."""
    g, c, s = cp.n_groups, cp.n_classes, cp.pred.shape[0]
    true = np.zeros((g, c))
    np.add.at(true, (cp.groups, cp.labels), 1.0)
    tp = np.zeros((g, s, c))
    pc = np.zeros((g, s, c))
    seeds = np.repeat(np.arange(s), cp.pred.shape[1])
    groups = np.tile(cp.groups, s)
    pred = cp.pred.ravel()
    correct = pred == np.tile(cp.labels, s)
    np.add.at(pc, (groups, seeds, pred), 1.0)
    np.add.at(tp, (groups[correct], seeds[correct], pred[correct]), 1.0)
    return true, tp.reshape(g, s * c), pc.reshape(g, s * c)


def _confusion_metric(metric: str, t: np.ndarray, tp: np.ndarray, pc: np.ndarray
                      ) -> np.ndarray:
    """(B, S) metric from weighted true counts t (B, C), hits tp and predictions pc (B, S, C)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            return tp.sum(2) / t.sum(1)[:, None]
        if metric == "balanced_accuracy":
            present = t > 0
            recall = np.where(present[:, None, :], tp / t[:, None, :], 0.0)
            return recall.sum(2) / present.sum(1)[:, None]
        denom = pc + t[:, None, :]
        f1 = np.where(denom > 0, 2 * tp / denom, 0.0)
        if metric == "f1_macro":
            return f1.mean(2)
        if metric == "f1_weighted":
            return (f1 * t[:, None, :]).sum(2) / t.sum(1)[:, None]
    raise ValueError(f"no bootstrap for metric {metric!r}; available: {BOOTSTRAP_METRICS}")


def _auroc(cp: CasePredictions, counts: np.ndarray) -> np.ndarray:
    """(B, S) macro one-vs-rest ROC-AUC with case weights counts[:, group] (classes present
    in a resample; NaN when fewer than two)."""
    if cp.probs is None:
        raise ValueError("auroc_macro needs the predicted probabilities")
    s_count = cp.pred.shape[0]
    b = counts.shape[0]
    w_cases = counts[:, cp.groups].astype(float)  # (B, N)
    out_sum = np.zeros((b, s_count))
    out_n = np.zeros((b, s_count))
    for c in range(cp.n_classes):
        pos = cp.labels == c
        if not pos.any() or pos.all():
            continue
        for s in range(s_count):
            x = cp.probs[s, :, c].astype(float)
            order = np.argsort(x, kind="stable")
            xs = x[order]
            starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
            w = w_cases[:, order]
            wp = w * pos[order]
            wn = w - wp
            pu = np.add.reduceat(wp, starts, axis=1)
            nu = np.add.reduceat(wn, starts, axis=1)
            below = np.cumsum(nu, axis=1) - nu
            num = (pu * (below + 0.5 * nu)).sum(1)
            tot_p, tot_n = pu.sum(1), nu.sum(1)
            ok = (tot_p > 0) & (tot_n > 0)
            out_sum[ok, s] += num[ok] / (tot_p[ok] * tot_n[ok])
            out_n[ok, s] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(out_n >= 2, out_sum / out_n, np.nan)


def _calibration(metric: str, cp: CasePredictions, counts: np.ndarray) -> np.ndarray:
    """(B, S) ece, brier or nll with case weights counts[:, group]."""
    if cp.probs is None:
        raise ValueError(f"{metric} needs the predicted probabilities")
    w = counts[:, cp.groups].astype(float)  # (B, N)
    out = np.empty((counts.shape[0], cp.pred.shape[0]))
    for s in range(cp.pred.shape[0]):
        probs = cp.probs[s].astype(np.float64)
        if metric == "ece":
            conf = probs.max(1)
            onehot = np.eye(ECE_BINS)[bin_index(conf)]  # (N, M)
            correct = (probs.argmax(1) == cp.labels).astype(float)
            n, c, h = w @ onehot, w @ (onehot * conf[:, None]), w @ (onehot * correct[:, None])
            out[:, s] = np.abs(h - c).sum(1) / n.sum(1)
        else:
            loss = (brier_per_case if metric == "brier" else nll_per_case)(probs, cp.labels)
            out[:, s] = (w @ loss) / w.sum(1)
    return out


def case_metric(metric: str, cp: CasePredictions, counts: np.ndarray) -> np.ndarray:
    """(B,) the cell's metric under each row of group weights ``counts`` (B, G), averaged over
    its seeds. ``counts`` of ones gives the plain test-set value."""
    out = np.empty(counts.shape[0])
    true, tp, pc = (None, None, None) if metric in _FROM_PROBS else _sufficient(cp)
    s, c = cp.pred.shape[0], cp.n_classes
    for lo in range(0, counts.shape[0], _CHUNK):
        w = counts[lo:lo + _CHUNK].astype(float)
        if metric in ("ece", "brier", "nll"):
            per_seed = _calibration(metric, cp, w)
        elif metric == "auroc_macro":
            per_seed = _auroc(cp, w)
        else:
            per_seed = _confusion_metric(metric, w @ true, (w @ tp).reshape(-1, s, c),
                                         (w @ pc).reshape(-1, s, c))
        out[lo:lo + _CHUNK] = per_seed.mean(1)
    return out


@dataclass(frozen=True)
class BootstrapResult:
    """Paired group-bootstrap of Δ = metric(A) − metric(B) on one test set."""

    delta: float
    ci_low: float
    ci_high: float
    p: float
    resamples: int
    n_groups: int
    n_cases: int
    alternative: str
    p_equivalent: float = math.nan
    """Bootstrap TOST p of |Δ| < margin: the larger of (1 + #{Δ* ≤ −m}) / (B + 1) and
    (1 + #{Δ* ≥ m}) / (B + 1); NaN without a margin."""


def paired_bootstrap(metric: str, a: CasePredictions, b: CasePredictions, resamples: int = 2000,
                     seed: int = 0, alternative: str = "two-sided", confidence: float = 0.95,
                     counts: np.ndarray | None = None, margin: float | None = None
                     ) -> BootstrapResult:
    """Δ with its percentile CI and bootstrap p-value from the same group resamples of both
    cells (``counts`` (B, G) may be passed to share them across contrasts of one test set);
    with ``margin``, also the bootstrap TOST p of equivalence."""
    if len(a.labels) != len(b.labels) or not np.array_equal(a.groups, b.groups):
        raise ValueError("a paired bootstrap needs both cells on the same cases")
    g = a.n_groups
    if counts is None:
        counts = resample_counts(g, resamples, seed)
    ones = np.ones((1, g))
    delta = float(case_metric(metric, a, ones)[0] - case_metric(metric, b, ones)[0])
    d = case_metric(metric, a, counts) - case_metric(metric, b, counts)
    return summarize_difference(delta, d, alternative, confidence, margin, g, len(a.labels))


def summarize_difference(delta: float, d: np.ndarray, alternative: str = "two-sided",
                         confidence: float = 0.95, margin: float | None = None,
                         n_groups: int = 0, n_cases: int = 0) -> BootstrapResult:
    """The bootstrap result of a point difference ``delta`` and its resampled values ``d``
    (non-finite resamples, e.g. a class absent from a resample for AUROC, are dropped)."""
    d = d[np.isfinite(d)]
    nan = math.nan
    if not len(d) or not math.isfinite(delta):
        return BootstrapResult(delta, nan, nan, nan, len(d), n_groups, n_cases, alternative)
    n = len(d)
    p_greater = (1 + np.sum(d <= 0)) / (n + 1)  # p of H1: Δ > 0
    p_less = (1 + np.sum(d >= 0)) / (n + 1)  # p of H1: Δ < 0
    if alternative == "greater":
        p, lo, hi = p_greater, float(np.quantile(d, 1 - confidence)), math.inf
    elif alternative == "less":
        p, lo, hi = p_less, -math.inf, float(np.quantile(d, confidence))
    else:
        p = min(1.0, 2 * min(p_greater, p_less))
        lo, hi = (float(q) for q in np.quantile(d, [(1 - confidence) / 2, (1 + confidence) / 2]))
    p_eq = math.nan
    if margin is not None:
        p_eq = max((1 + np.sum(d <= -margin)) / (n + 1), (1 + np.sum(d >= margin)) / (n + 1))
    return BootstrapResult(delta, lo, hi, float(p), n, n_groups, n_cases, alternative,
                           float(p_eq))
