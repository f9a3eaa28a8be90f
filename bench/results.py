"""Tracker → tidy results table (one row per trial of the current plan)."""

from __future__ import annotations

import pandas as pd

from bench.plan import Plan
from bench.track import FINISHED, Tracker

BASE_COLUMNS = ["cell", "init", "chain", "protocol", "seed", "status", "failure", "trial_key",
                "run_id"]


def load_results(plan: Plan, tracker: Tracker) -> pd.DataFrame:
    """One row per trial of ``plan`` that has a run: identifiers, status, failure reason and the
    test metrics (``accuracy``, ``f1_weighted``, …; ``test_`` prefix dropped).

    A trial with a FINISHED run is reported by that run; otherwise by its latest run (FAILED,
    KILLED or still RUNNING). Trials never started are absent (see :func:`pending_count`).
    """
    runs = tracker.status_by_key("trial")
    rows = []
    for t in plan.trials:
        r = runs.get(t.key)
        if r is None:
            continue
        row = {
            "cell": t.cell.name, "init": t.cell.init, "chain": "+".join(t.cell.chain),
            "protocol": t.cell.protocol, "seed": t.seed, "status": r.status,
            "failure": r.tags.get("bench.failure", ""), "trial_key": t.key, "run_id": r.run_id,
        }
        if r.status == FINISHED:
            row.update({k.removeprefix("test_"): v for k, v in r.metrics.items()
                        if k.startswith("test_")})
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else BASE_COLUMNS)


def pending_count(plan: Plan, results: pd.DataFrame) -> int:
    """Trials of the plan with no run at all."""
    return len(plan.trials) - len(results)
