"""Classification metrics from predicted probabilities (sklearn definitions), and the
calibration of those probabilities (ECE, Brier, NLL; lower is better for these three)."""

from __future__ import annotations

import warnings

import numpy as np

from bench.stats.calibration import brier, expected_calibration_error, nll


def compute_metrics(probs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    """Metrics of (N, C) probabilities against (N,) int labels.

    ``f1_weighted`` is sklearn's ``f1_score(average="weighted", zero_division=0)`` (support-weighted
    mean of per-class F1, the paper's weighted F1); ``auroc_macro`` is one-vs-rest macro ROC-AUC
    over the classes present in ``labels`` (NaN if fewer than two), ``ap_macro`` the same for
    average precision (sklearn's ``average_precision_score``, one class vs the rest);
    ``precision_<c>``, ``recall_<c>``, ``f1_<c>`` per class, ``auroc_<c>`` and ``ap_<c>`` per
    class present (the paper's per-class ROC-AUC and AP); ``confusion``: the (C, C) matrix
    (rows = true class) as nested lists; ``ece`` (15 bins, top label), ``brier`` and ``nll``
    (see :func:`expected_calibration_error`, :func:`brier`, :func:`nll`).
    """
    from sklearn.metrics import (
        average_precision_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    pred = probs.argmax(1)
    n_classes = probs.shape[1]
    out = {
        "accuracy": float((pred == labels).mean()),
        "f1_weighted": float(f1_score(labels, pred, average="weighted", zero_division=0)),
        "f1_macro": float(f1_score(labels, pred, average="macro", zero_division=0,
                                   labels=list(range(n_classes)))),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["balanced_accuracy"] = float(balanced_accuracy_score(labels, pred))
    present = np.unique(labels)
    if len(present) >= 2:
        aucs = [float(roc_auc_score(labels == c, probs[:, c])) for c in present]
        aps = [float(average_precision_score(labels == c, probs[:, c])) for c in present]
        out["auroc_macro"] = float(np.mean(aucs))
        out["ap_macro"] = float(np.mean(aps))
        for c, auc, ap in zip(present, aucs, aps, strict=True):
            out[f"auroc_{names[c]}"] = auc
            out[f"ap_{names[c]}"] = ap
    else:
        out["auroc_macro"] = out["ap_macro"] = float("nan")
    prec, rec, f1, _ = precision_recall_fscore_support(
        labels, pred, labels=list(range(n_classes)), average=None, zero_division=0)
    for i, name in enumerate(names):
        out[f"precision_{name}"] = float(prec[i])
        out[f"recall_{name}"] = float(rec[i])
        out[f"f1_{name}"] = float(f1[i])
    out["ece"] = expected_calibration_error(probs, labels)
    out["brier"] = brier(probs, labels)
    out["nll"] = nll(probs, labels)
    out["confusion"] = confusion_matrix(labels, pred, labels=list(range(n_classes))).tolist()
    return out
