"""The case-level evidence: weighted metrics against sklearn, and the coverage of the paired
group bootstrap in a simulation with a known population difference."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    roc_auc_score,
)

from bench.stats.bootstrap import (
    CasePredictions,
    case_metric,
    paired_bootstrap,
    resample_counts,
)
from bench.stats.calibration import expected_calibration_error
from bench.train.metrics import compute_metrics

ALL = ["accuracy", "balanced_accuracy", "f1_weighted", "f1_macro", "auroc_macro", "ece", "brier",
       "nll"]


def _cells(rng: np.random.Generator, n: int = 120, g: int = 50, s: int = 3, c: int = 4
           ) -> CasePredictions:
    labels = rng.integers(0, c, n)
    labels[:c] = np.arange(c)  # every class present
    groups = np.sort(rng.integers(0, g, n))
    groups = np.unique(groups, return_inverse=True)[1]
    logits = rng.normal(size=(s, n, c)) + 1.5 * np.eye(c)[labels][None]
    probs = np.exp(logits) / np.exp(logits).sum(2, keepdims=True)
    return CasePredictions(labels=labels, groups=groups, pred=probs.argmax(2), probs=probs,
                           n_classes=c)


def _sklearn(metric: str, y: np.ndarray, pred: np.ndarray, probs: np.ndarray, w: np.ndarray,
             c: int) -> float:
    if metric == "accuracy":
        return accuracy_score(y, pred, sample_weight=w)
    if metric == "balanced_accuracy":
        return balanced_accuracy_score(y, pred, sample_weight=w)
    if metric == "f1_weighted":
        return f1_score(y, pred, average="weighted", sample_weight=w, zero_division=0)
    if metric == "f1_macro":
        return f1_score(y, pred, average="macro", sample_weight=w, zero_division=0,
                        labels=list(range(c)))
    if metric == "brier":
        return brier_score_loss(y, probs, sample_weight=w, labels=list(range(c)),
                                scale_by_half=False)
    if metric == "nll":
        return log_loss(y, probs, sample_weight=w, labels=list(range(c)))
    if metric == "ece":  # integer weights: each case repeated as often as it was drawn
        rows = np.repeat(np.arange(len(y)), w.astype(int))
        return expected_calibration_error(probs[rows], y[rows])
    present = [k for k in range(c) if w[y == k].sum() > 0]
    return float(np.mean([roc_auc_score(y == k, probs[:, k], sample_weight=w) for k in present]))


@pytest.mark.parametrize("metric", ALL)
def test_resampled_metrics_equal_sklearn_with_sample_weights(metric: str) -> None:
    rng = np.random.default_rng(0)
    cp = _cells(rng)
    counts = resample_counts(cp.n_groups, 6, seed=1)
    got = case_metric(metric, cp, counts)
    for b in range(len(counts)):
        w = counts[b][cp.groups].astype(float)
        keep = w > 0  # sklearn's label set is the labels present in the arrays
        ref = np.mean([_sklearn(metric, cp.labels[keep], cp.pred[s][keep], cp.probs[s][keep],
                                w[keep], cp.n_classes) for s in range(cp.pred.shape[0])])
        assert got[b] == pytest.approx(ref, abs=1e-12)


def test_unit_weights_give_the_trials_own_metrics() -> None:
    cp = _cells(np.random.default_rng(2))
    ones = np.ones((1, cp.n_groups))
    names = [f"c{k}" for k in range(cp.n_classes)]
    for metric in ALL:
        per_trial = [compute_metrics(cp.probs[s], cp.labels, names)[metric]
                     for s in range(cp.pred.shape[0])]
        assert case_metric(metric, cp, ones)[0] == pytest.approx(np.mean(per_trial), abs=1e-12)


def test_resamples_draw_groups_with_replacement() -> None:
    counts = resample_counts(40, 500, seed=3)
    assert counts.shape == (500, 40) and (counts.sum(1) == 40).all()
    assert counts.mean() == pytest.approx(1.0) and counts.var() == pytest.approx(1 - 1 / 40,
                                                                                   rel=0.05)
    assert np.array_equal(counts, resample_counts(40, 500, seed=3))


def test_bootstrap_ci_covers_the_population_difference() -> None:
    """A population of 100,000 lesions (1–3 images each, correlated within a lesion) with two
    fixed classifiers; each study draws 150 lesions. The 95 % CI of Δ accuracy for new
    patients must cover the population Δ in 93–97 % of the studies."""
    rng = np.random.default_rng(7)
    pop = 100_000
    size = rng.integers(1, 4, pop)
    hard = rng.normal(0, 1.0, pop)  # lesion difficulty, shared by its images and models
    p_a = 1 / (1 + np.exp(-(1.2 - hard)))
    p_b = 1 / (1 + np.exp(-(0.9 - hard + rng.normal(0, 0.5, pop))))
    truth = float(np.sum(size * p_a) / size.sum() - np.sum(size * p_b) / size.sum())
    studies, hits, g = 1000, 0, 150
    for k in range(studies):
        pick = rng.integers(0, pop, g)
        n_img = size[pick]
        groups = np.repeat(np.arange(g), n_img)
        correct_a = rng.random(len(groups)) < np.repeat(p_a[pick], n_img)
        correct_b = rng.random(len(groups)) < np.repeat(p_b[pick], n_img)
        labels = np.zeros(len(groups), dtype=int)
        a = CasePredictions(labels, groups, np.where(correct_a, 0, 1)[None], None, 2)
        b = CasePredictions(labels, groups, np.where(correct_b, 0, 1)[None], None, 2)
        res = paired_bootstrap("accuracy", a, b, resamples=1000, seed=k)
        hits += res.ci_low <= truth <= res.ci_high
    coverage = hits / studies
    assert 0.93 <= coverage <= 0.97, coverage


def test_one_sided_and_equivalence_p_values() -> None:
    rng = np.random.default_rng(5)
    cp = _cells(rng)
    worse = CasePredictions(cp.labels, cp.groups, np.where(rng.random(cp.pred.shape) < 0.3,
                                                           (cp.pred + 1) % 4, cp.pred),
                            cp.probs, 4)
    two = paired_bootstrap("accuracy", cp, worse, 2000, seed=0)
    greater = paired_bootstrap("accuracy", cp, worse, 2000, seed=0, alternative="greater")
    assert two.delta > 0 and two.ci_low > 0 and greater.p < 0.01
    assert greater.ci_high == np.inf and greater.ci_low > two.ci_low
    assert paired_bootstrap("accuracy", cp, worse, 2000, seed=0, alternative="less").p > 0.99
    same = paired_bootstrap("accuracy", cp, cp, 500, seed=0, margin=0.01)
    assert same.delta == 0 and same.p == 1.0 and same.p_equivalent == pytest.approx(1 / 501)
