"""Per-cell evidence: the values each metric has, how they nest in pre-training replicates,
and what was lost on the way (failed trials, non-finite metrics), never silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.plan import Plan
from bench.stats import Summary, summarize
from bench.stats.replicates import Clustering, clustering, unit_means
from bench.track import FAILED, FINISHED, KILLED

LOST = (FAILED, KILLED)


@dataclass
class Arm:
    """One cell's values on one metric, as its contrasts use them (finite values only; the
    non-finite ones are counted in ``dropped``).

    Attributes:
        values: (n,) finite trial values, ordered by (replicate, seed).
        units: (n,) the pre-training replicate of each value ('' without replicates).
        keys: (n,) (replicate, seed) of each value, to match trials between cells.
        replicated: the cell's chain has a replicated stage: its unit of inference is the
            replicate, not the trial.
        dropped: finished trials whose value of this metric is NaN or infinite.
    """

    values: np.ndarray
    units: np.ndarray
    keys: list[tuple[str, int]]
    replicated: bool
    dropped: int = 0

    def unit_values(self) -> np.ndarray:
        """Replicate means when replicated, else the trial values."""
        return unit_means(self.values, self.units) if self.replicated else self.values


@dataclass
class CellRow:
    """One line of a results table.

    Attributes:
        n: finished trials (every metric's own n is in ``metrics[m].n``).
        failed: failed or interrupted trials. planned: trials the plan has.
        dropped: per metric, finished trials whose value is not finite.
        pretraining: ``none`` (the init as given), ``single`` (its stages ran once) or
            ``replicated`` (``replicates`` independent pre-training runs).
        clustering: per metric, the ICC of the trials in their replicates (replicated only).
        failures: (reason, count) of the failed or interrupted trials.
    """

    cell: str
    encoder: str
    protocol: str
    n: int
    failed: int
    planned: int
    metrics: dict[str, Summary]
    dropped: dict[str, int] = field(default_factory=dict)
    pretraining: str = "none"
    replicates: int = 1
    clustering: dict[str, Clustering] = field(default_factory=dict)
    failures: list[tuple[str, int]] = field(default_factory=list)
    unit_metrics: dict[str, Summary] = field(default_factory=dict)
    """Per metric, the summary of the replicate means (replicated cells only)."""


def pretraining_of(plan: Plan, name: str) -> tuple[str, int]:
    """(``none`` | ``single`` | ``replicated``, number of outermost replicates) of a cell."""
    cells = plan.replicates_of(name)
    if not cells[0].chain:
        return "none", 1
    units = {c.unit for c in cells}
    if units == {""}:
        return "single", 1
    return "replicated", len(units)


def cell_frames(results: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each cell's finished trials, ordered by (replicate, seed): one pass over the results."""
    if not len(results):
        return {}
    fin = results[results["status"] == FINISHED]
    order = [c for c in ("replicate", "seed") if c in fin]
    fin = fin.sort_values(["cell", *order], kind="stable")
    return {str(name): group for name, group in fin.groupby("cell", sort=False)}


def arm(plan: Plan, results: pd.DataFrame, name: str, metric: str,
        frames: dict[str, pd.DataFrame] | None = None) -> Arm:
    """The finite values of ``metric`` for cell ``name`` (``frames``: :func:`cell_frames` of
    ``results``, when already made)."""
    if frames is None:
        frames = cell_frames(results)
    rows = frames.get(name, results.iloc[:0])
    replicated = pretraining_of(plan, name)[0] == "replicated"
    if not len(rows) or metric not in rows:
        return Arm(np.array([]), np.array([], dtype=str), [], replicated, 0)
    v = rows[metric].to_numpy(dtype=float)
    ok = np.isfinite(v)
    units = rows["unit"].astype(str).to_numpy() if "unit" in rows else np.full(len(v), "")
    reps = rows["replicate"].astype(str).tolist() if "replicate" in rows else [""] * len(v)
    keys = [(r, int(s)) for r, s, k in zip(reps, rows["seed"], ok, strict=True) if k]
    return Arm(v[ok], units[ok], keys, replicated, int((~ok).sum()))


def cell_rows(plan: Plan, results: pd.DataFrame, metrics: list[str],
              arm_of: Callable[[str, str], Arm] | None = None,
              seeds: dict[str, int] | None = None) -> tuple[list[CellRow], list[str]]:
    """A row per cell name, and the warnings a reader must see first (incomplete cells,
    non-finite metric values). ``arm_of(cell, metric)`` gives a cell's values (default
    :func:`arm`; pass a cached one to share them with the contrasts); ``seeds``: seeds per
    encoder each cell is planned to get (default ``seeds.count``; sequential seeds stop
    earlier)."""
    if arm_of is None:
        frames = cell_frames(results)

        def arm_of(cell: str, metric: str) -> Arm:
            return arm(plan, results, cell, metric, frames)
    warnings: list[str] = []
    rows: list[CellRow] = []
    per_rep = plan.suite.seeds.count
    counts = (results.groupby(["cell", "status"], sort=False).size().to_dict()
              if len(results) else {})
    lost_rows = results[results["status"].isin(LOST)] if len(results) else results
    lost_by_cell = {str(k): g for k, g in lost_rows.groupby("cell", sort=False)} \
        if len(lost_rows) else {}
    for name in plan.cell_names():
        reps = plan.replicates_of(name)
        first = reps[0]
        planned = (seeds or {}).get(name, per_rep) * len(reps)
        lost = lost_by_cell.get(name, results.iloc[:0])
        finished = int(counts.get((name, FINISHED), 0))
        kind, k = pretraining_of(plan, name)
        row = CellRow(cell=name, encoder="+".join([first.init, *first.chain]),
                      protocol=first.protocol, n=finished, failed=len(lost), planned=planned,
                      metrics={}, pretraining=kind, replicates=k)
        reasons = Counter(str(r).splitlines()[0] if str(r) else "(no reason recorded)"
                          for r in (lost["failure"] if len(lost) else []))
        row.failures = sorted(reasons.items(), key=lambda x: -x[1])
        for m in metrics:
            a = arm_of(name, m)
            row.metrics[m] = summarize(a.values)
            row.dropped[m] = a.dropped
            if a.dropped:
                warnings.append(f"{name}: {a.dropped} finished trial(s) have no finite {m} "
                                f"(NaN or infinite); {m} uses n = {len(a.values)}")
            if kind == "replicated":
                row.clustering[m] = clustering(a.values, a.units)
                row.unit_metrics[m] = summarize(a.unit_values())
        rows.append(row)
        if row.n < planned:
            warnings.append(f"{name}: {row.n} of {planned} trials finished"
                            + (f" ({row.failed} failed or interrupted)" if row.failed else ""))
    return rows, warnings

