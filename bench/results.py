"""Tracker → tidy results: one row per trial of the current plan, and per-case predictions."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis.cases import TrialPredictions
from bench.config.names import parse_ref
from bench.plan import Plan
from bench.track import FINISHED, RunRecord, Tag, Tracker

BASE_COLUMNS = ["cell", "init", "chain", "protocol", "replicate", "unit", "seed", "status",
                "failure", "trial_key", "run_id"]
_FLOAT_MAX = 1.7976931348623157e308
"""MLflow stores ±inf as ±this value; results turn it back into ±inf."""


def _metric_value(v: float) -> float:
    return math.copysign(math.inf, v) if abs(v) >= _FLOAT_MAX else v


def load_results(plan: Plan, tracker: Tracker) -> pd.DataFrame:
    """One row per trial of ``plan`` that has a run: identifiers (``replicate``: the encoder's
    pre-training replicate, ``unit``: its outermost replicated stage's index; both '' without
    replicates), status, failure reason and the test metrics (``accuracy``, ``f1_weighted``, …;
    ``test_`` prefix dropped; a metric a FINISHED trial could not compute is NaN).

    A trial with a FINISHED run is reported by that run; otherwise by its latest run (FAILED,
    KILLED or still RUNNING). Trials never started are absent (see :func:`pending_count`).
    """
    return results_of(plan, tracker.status_by_key("trial"))


def results_of(plan: Plan, runs: Mapping[str, RunRecord]) -> pd.DataFrame:
    """:func:`load_results` from the best run of each key (as the executor's snapshot holds
    them)."""
    rows = []
    for t in plan.trials:
        r = runs.get(t.key)
        if r is None:
            continue
        row = {
            "cell": t.cell.name, "init": t.cell.init, "chain": "+".join(t.cell.chain),
            "protocol": t.cell.protocol, "replicate": t.cell.replicate, "unit": t.cell.unit,
            "seed": t.seed, "status": r.status, "failure": r.tags.get(Tag.FAILURE, ""),
            "trial_key": t.key, "run_id": r.run_id,
        }
        if r.status == FINISHED:
            row.update({k.removeprefix("test_"): _metric_value(v) for k, v in r.metrics.items()
                        if k.startswith("test_")})
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else BASE_COLUMNS)


def pending_count(plan: Plan, results: pd.DataFrame) -> int:
    """Trials of the plan with no run at all."""
    return len(plan.trials) - len(results)


def load_predictions(plan: Plan, tracker: Tracker, results: pd.DataFrame,
                     cells: Iterable[str]) -> tuple[dict[str, TrialPredictions], list[str]]:
    """The predictions of the FINISHED trials of ``cells`` by trial key, and notes on the ones
    that could not be used.

    Predictions written before case ids were stored are matched to the test part's current
    manifest when the run's recorded manifest hash equals it (the images were served in that
    order); otherwise they are left out, with a note.
    """
    wanted = set(cells)
    fin = results[(results["status"] == FINISHED) & results["cell"].isin(wanted)] \
        if len(results) else results
    if not len(fin):
        return {}, []
    records = tracker.status_by_key("trial")
    trials = {t.key: t for t in plan.trials}
    out: dict[str, TrialPredictions] = {}
    skipped: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        for key, run_id in zip(fin["trial_key"], fin["run_id"], strict=True):
            trial = trials[key]
            try:
                path = tracker.local_artifact(records[key], "predictions.npz")
                if path is None and not records[key].artifact_uri.startswith("file:"):
                    path = tracker.artifact_path(run_id, "predictions.npz", Path(tmp) / key)
                if path is None:
                    raise FileNotFoundError("predictions.npz")
                npz = np.load(path, allow_pickle=False)
            except Exception:  # an artifact store without the file: no case-level evidence
                skipped[trial.cell.name] = skipped.get(trial.cell.name, 0) + 1
                continue
            ref = trial.cell.spec.test
            ds_name, part = parse_ref(ref)
            if "ids" in npz.files:
                ids, groups = npz["ids"].astype(str), npz["groups"].astype(str)
            else:
                ds = plan.datasets[ds_name]
                recorded = records[key].tags.get(Tag.MANIFEST_PREFIX + ref)
                if recorded != ds.manifest_hash(part) or len(ds.part(part)) != len(npz["labels"]):
                    skipped[trial.cell.name] = skipped.get(trial.cell.name, 0) + 1
                    continue
                cases = ds.part(part)
                ids = cases["id"].astype(str).to_numpy()
                groups = cases["group"].astype(str).to_numpy()
            out[key] = TrialPredictions(ids=ids, groups=groups, labels=npz["labels"],
                                        pred=npz["pred"], probs=npz["probs"])
    notes = [f"{cell}: {n} trial(s) without usable predictions (no case ids and another test "
             f"manifest, or no predictions.npz): left out of the case-level evidence and the "
             f"reliability diagram"
             for cell, n in skipped.items()]
    return out, notes
