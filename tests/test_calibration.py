"""Calibration and scoring metrics (ECE, Brier, NLL) against sklearn and a hand computation, and
what a verdict means on a metric where lower is better."""

from __future__ import annotations

import numpy as np
import pytest

from bench.analysis.cells import Arm
from bench.analysis.orders import partial_orders
from bench.analysis.verdicts import BETTER, WORSE, decide, evaluate
from bench.stats.calibration import expected_calibration_error, reliability
from bench.train.metrics import compute_metrics


def _probs(seed: int, n: int = 500, c: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = rng.normal(0, 1.5, (n, c)) + 2.0 * np.eye(c)[labels] * rng.uniform(0, 1, (n, 1))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, labels


def _ece_by_hand(probs: np.ndarray, labels: np.ndarray, bins: int) -> float:
    conf, pred = probs.max(1), probs.argmax(1)
    total = 0.0
    for m in range(bins):
        lo, hi = m / bins, (m + 1) / bins
        inside = (conf > lo) & (conf <= hi) if m else (conf >= lo) & (conf <= hi)
        if inside.any():
            gap = abs((pred[inside] == labels[inside]).mean() - conf[inside].mean())
            total += inside.sum() / len(labels) * gap
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_brier_and_nll_equal_a_hand_computation_and_sklearn(seed: int) -> None:
    from sklearn.metrics import brier_score_loss, log_loss

    probs, labels = _probs(seed)
    m = compute_metrics(probs, labels, ["a", "b", "c", "d"])
    assert m["ece"] == pytest.approx(_ece_by_hand(probs, labels, 15), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(
        labels, probs, labels=[0, 1, 2, 3], scale_by_half=False), abs=1e-12)
    assert m["nll"] == pytest.approx(log_loss(labels, probs, labels=[0, 1, 2, 3]), abs=1e-12)
    # 15 bins is the number: 10 gives another value on the same probabilities
    assert expected_calibration_error(probs, labels, 10) == pytest.approx(
        _ece_by_hand(probs, labels, 10), abs=1e-12)
    assert expected_calibration_error(probs, labels, 10) != pytest.approx(m["ece"], abs=1e-6)


def test_calibration_metrics_have_their_known_values_at_the_extremes() -> None:
    labels = np.array([0, 1, 2, 0])
    perfect = np.eye(3)[labels]
    m = compute_metrics(perfect, labels, ["a", "b", "c"])
    assert (m["ece"], m["brier"], m["nll"]) == (0.0, 0.0, 0.0)
    uniform = np.full((4, 3), 1 / 3)  # confidence 1/3, accuracy 1/2 (argmax: class 0)
    m = compute_metrics(uniform, labels, ["a", "b", "c"])
    assert m["ece"] == pytest.approx(abs(0.5 - 1 / 3))
    assert m["brier"] == pytest.approx((2 / 3) ** 2 + 2 / 9)
    assert m["nll"] == pytest.approx(np.log(3))
    wrong = np.eye(3)[[1, 2, 0, 1]]  # certain and always wrong: a finite NLL, the floor's
    assert compute_metrics(wrong, labels, ["a", "b", "c"])["nll"] == pytest.approx(
        -np.log(1e-12))


def test_reliability_bins_count_every_case_once() -> None:
    probs, labels = _probs(3)
    n, conf, hits = reliability(probs, labels)
    assert n.sum() == len(labels) and hits.sum() == (probs.argmax(1) == labels).sum()
    assert conf.sum() == pytest.approx(probs.max(1).sum())
    assert n[:3].sum() == 0  # with 4 classes no confidence is below 1/4 (bins of 1/15)
    edge = np.array([[1 / 3 + 1e-9, 1 / 3, 1 / 3 - 1e-9]])  # confidence 0.333…: the bin (5/15, 6/15]
    assert reliability(edge, np.array([0]))[0].argmax() == 5


def _arm(values: list[float]) -> Arm:
    return Arm(np.asarray(values, float), np.full(len(values), ""),
               [("", i) for i in range(len(values))], False)


@pytest.mark.parametrize("alternative", ["two-sided", "less"])
def test_on_ece_brier_and_nll_the_lower_value_is_the_better_one(alternative: str) -> None:
    """A's calibration error is clearly lower: on ece A ≻ B, and a one-sided `less` (A's value
    below B's) is the declared improvement, not its opposite."""
    low, high = [0.02, 0.03, 0.025, 0.028, 0.022], [0.09, 0.1, 0.11, 0.095, 0.105]
    for metric in ("ece", "brier", "nll"):
        row = evaluate("A", "B", metric, _arm(low), _arm(high), alternative, None, [])
        decide([row], 0.05)
        assert row.verdict == BETTER and row.primary.delta < 0 and row.prob_a_better == 1.0
        order = partial_orders([row], [metric], ["p"], {"p": ["A", "B"]})[0]
        assert order.better == [("A", "B")]
    on_accuracy = evaluate("A", "B", "accuracy", _arm(low), _arm(high), "two-sided", None, [])
    decide([on_accuracy], 0.05)
    assert on_accuracy.verdict == WORSE and on_accuracy.prob_a_better == 0.0


def test_a_declared_improvement_in_calibration_seen_the_other_way_is_flagged() -> None:
    """`alternative: less` on ece declares A better; data where A's ece is higher show as
    'opposite', with B as the apparent winner."""
    row = evaluate("A", "B", "ece", _arm([0.09, 0.1, 0.11, 0.095, 0.105]),
                   _arm([0.02, 0.03, 0.025, 0.028, 0.022]), "less", None, [])
    decide([row], 0.05)
    assert row.opposite and row.verdict == "inconclusive"
    order = partial_orders([row], ["ece"], ["p"], {"p": ["A", "B"]})[0]
    assert order.opposite == [("B", "A")] and order.better == []


def test_a_cells_reliability_pools_its_trials_predictions() -> None:
    from bench.analysis.calibration import cell_reliability
    from bench.stats.bootstrap import CasePredictions

    trials = [_probs(s, n=120) for s in (4, 5, 6)]
    labels = trials[0][1]
    probs = np.stack([p for p, _ in trials])  # (3, 120, 4): three trials on the same cases
    rel = cell_reliability({"c": CasePredictions(labels, np.arange(120), probs.argmax(2),
                                                 probs, 4)})["c"]
    assert (rel.trials, rel.cases, rel.n.sum()) == (3, 120, 360)
    pooled = expected_calibration_error(probs.reshape(360, 4), np.tile(labels, 3))
    assert rel.ece == pytest.approx(pooled, abs=1e-12)
    empty = rel.n == 0
    assert np.isnan(rel.accuracy[empty]).all() and not np.isnan(rel.accuracy[~empty]).any()
