"""Classification metrics from predicted probabilities (sklearn definitions), and the
calibration of those probabilities (ECE, Brier, NLL; lower is better for these three)."""

from __future__ import annotations

import numpy as np

from bench.stats.calibration import brier, expected_calibration_error, nll


def _auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC of one class vs the rest: the Mann–Whitney U of the scores over nP·nN, ties
    counted half (average ranks) — the area under sklearn's ``roc_curve``."""
    order = np.argsort(score, kind="mergesort")
    _, first, count = np.unique(score[order], return_index=True, return_counts=True)
    ranks = np.empty(len(score))
    ranks[order] = np.repeat(first + (count + 1) / 2, count)  # average ranks, 1-based
    n_pos = int(positive.sum())
    n_neg = len(score) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_precision(positive: np.ndarray, score: np.ndarray) -> float:
    """sklearn's ``average_precision_score``: Σ (R_k − R_{k−1}) P_k over the distinct score
    thresholds, highest first."""
    order = np.argsort(-score, kind="mergesort")
    s, hit = score[order], positive[order].astype(float)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each threshold
    tps = np.cumsum(hit)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (sklearn's ``zero_division=0``)."""
    out = np.zeros(len(num))
    np.divide(num, den, out=out, where=den > 0)
    return out


def compute_metrics(probs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    """Metrics of (N, C) probabilities against (N,) int labels, with sklearn's definitions
    (written out in numpy: a HeadBank computes them for every head; equal to sklearn to 1e-12
    in the tests).

    ``f1_weighted`` is ``f1_score(average="weighted", zero_division=0)`` (support-weighted mean
    of per-class F1, the paper's weighted F1); ``f1_macro`` the unweighted mean over all C
    classes; ``balanced_accuracy`` the mean recall over the classes present in ``labels``;
    ``auroc_macro`` is one-vs-rest macro ROC-AUC over the classes present in ``labels`` (NaN if
    fewer than two), ``ap_macro`` the same for average precision (``average_precision_score``,
    one class vs the rest); ``precision_<c>``, ``recall_<c>``, ``f1_<c>`` per class, ``auroc_<c>``
    and ``ap_<c>`` per class present (the paper's per-class ROC-AUC and AP); ``confusion``: the
    (C, C) matrix (rows = true class) as nested lists; ``ece`` (15 bins, top label), ``brier``
    and ``nll`` (see :func:`expected_calibration_error`, :func:`brier`, :func:`nll`).
    """
    labels = np.asarray(labels).astype(np.int64)
    pred = probs.argmax(1)
    n_classes = probs.shape[1]
    confusion = np.bincount(labels * n_classes + pred,
                            minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(confusion).astype(float)
    support, predicted = confusion.sum(1).astype(float), confusion.sum(0).astype(float)
    prec, rec = _ratio(tp, predicted), _ratio(tp, support)
    f1 = _ratio(2 * tp, support + predicted)
    present = np.flatnonzero(support > 0)
    out = {
        "accuracy": float((pred == labels).mean()),
        "f1_weighted": float(np.sum(f1 * support) / support.sum()),
        "f1_macro": float(f1.mean()),
        "balanced_accuracy": float(rec[present].mean()),
    }
    if len(present) >= 2:
        aucs = [_auroc(labels == c, probs[:, c]) for c in present]
        aps = [_average_precision(labels == c, probs[:, c]) for c in present]
        out["auroc_macro"] = float(np.mean(aucs))
        out["ap_macro"] = float(np.mean(aps))
        for c, auc, ap in zip(present, aucs, aps, strict=True):
            out[f"auroc_{names[c]}"] = auc
            out[f"ap_{names[c]}"] = ap
    else:
        out["auroc_macro"] = out["ap_macro"] = float("nan")
    for i, name in enumerate(names):
        out[f"precision_{name}"] = float(prec[i])
        out[f"recall_{name}"] = float(rec[i])
        out[f"f1_{name}"] = float(f1[i])
    out["ece"] = expected_calibration_error(probs, labels)
    out["brier"] = brier(probs, labels)
    out["nll"] = nll(probs, labels)
    out["confusion"] = confusion.tolist()
    return out
