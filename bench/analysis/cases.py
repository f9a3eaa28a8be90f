"""Per-case predictions of the trials, aligned into one case order per test set.

The paired bootstrap (``bench.stats.bootstrap``) needs every trial of both cells of a contrast
on the same cases in the same order, with the cases' groups. Predictions are stored per trial
with their case ids and group ids; here they are put in the order of the sorted case ids of
their test part, so that two cells tested on that part line up case by case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.plan import Plan
from bench.stats.bootstrap import CasePredictions


@dataclass
class TrialPredictions:
    """One trial's test predictions (``predictions.npz``), cases in the order they were served.

    Attributes:
        ids: (N,) case ids. groups: (N,) group ids (patient / lesion; the id without groups).
        labels: (N,) true class. pred: (N,) predicted class.
        probs: (N, C) probabilities (float16 as stored).
    """

    ids: np.ndarray
    groups: np.ndarray
    labels: np.ndarray
    pred: np.ndarray
    probs: np.ndarray


@dataclass
class TestCases:
    """The canonical case order of one test part: sorted ids, their group codes."""

    ids: np.ndarray
    groups: np.ndarray
    group_names: np.ndarray


def _canonical(first: TrialPredictions) -> TestCases:
    order = np.argsort(first.ids, kind="stable")
    ids = first.ids[order]
    names, codes = np.unique(first.groups[order], return_inverse=True)
    return TestCases(ids=ids, groups=codes, group_names=names)


def case_predictions(plan: Plan, predictions: dict[str, TrialPredictions]
                     ) -> tuple[dict[str, CasePredictions], dict[str, str], list[str]]:
    """(cell name → its trials on the canonical case order, cell name → its test part, notes).

    A trial whose cases differ from the others' of its test part is left out (with a note).
    """
    by_test: dict[str, TestCases] = {}
    per_cell: dict[str, list[TrialPredictions]] = {}
    test_of: dict[str, str] = {}
    notes: list[str] = []
    for t in plan.trials:
        tp = predictions.get(t.key)
        if tp is None:
            continue
        ref = t.cell.spec.test
        cases = by_test.setdefault(ref, _canonical(tp))
        if len(tp.ids) != len(cases.ids) or not np.array_equal(np.sort(tp.ids), cases.ids):
            notes.append(f"{t.cell.display} seed={t.seed}: its predictions cover other test cases "
                         f"than the other trials on {ref}; left out of the case-level evidence")
            continue
        per_cell.setdefault(t.cell.name, []).append(tp)
        test_of[t.cell.name] = ref
    out: dict[str, CasePredictions] = {}
    for name, trials in per_cell.items():
        cases = by_test[test_of[name]]
        orders = [np.argsort(tp.ids, kind="stable") for tp in trials]
        first = trials[0]
        out[name] = CasePredictions(
            labels=first.labels[orders[0]].astype(np.int64),
            groups=cases.groups,
            pred=np.stack([tp.pred[o] for tp, o in zip(trials, orders, strict=True)]),
            probs=np.stack([tp.probs[o] for tp, o in zip(trials, orders, strict=True)]),
            n_classes=int(first.probs.shape[1]),
        )
    return out, test_of, notes
