"""Report tables built from the results table and the suite's contrasts (no training here)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from bench.config.schema import Suite
from bench.plan import Plan
from bench.stats import Summary, WelchResult, summarize, welch
from bench.track import FINISHED


@dataclass
class CellRow:
    """One line of the results table."""

    cell: str
    encoder: str
    protocol: str
    n: int
    failed: int
    planned: int
    metrics: dict[str, Summary]


@dataclass
class ContrastRow:
    """One line of the significance table."""

    a: str
    b: str
    label: str
    metric: str
    family: str
    n_a: int
    n_b: int
    test: WelchResult
    significant: bool


@dataclass
class ReportData:
    """Everything a template needs."""

    suite: Suite
    metrics: list[str]
    alpha: float
    cells: list[CellRow]
    contrasts: list[ContrastRow]
    warnings: list[str] = field(default_factory=list)
    n_trials: int = 0


def build_report(plan: Plan, results: pd.DataFrame, metrics: list[str] | None = None,
                 alpha: float | None = None) -> ReportData:
    """Per-cell summaries and Welch tests of the declared contrasts."""
    suite = plan.suite
    metrics = metrics or suite.report.metrics
    alpha = suite.report.alpha if alpha is None else alpha
    finished = results[results["status"] == FINISHED] if len(results) else results
    cells: list[CellRow] = []
    warnings: list[str] = []
    per_cell = suite.seeds.count
    for cell in plan.cells:
        rows = finished[finished["cell"] == cell.name] if len(finished) else finished
        all_rows = results[results["cell"] == cell.name] if len(results) else results
        failed = int((all_rows["status"] != FINISHED).sum()) if len(all_rows) else 0
        summ = {m: summarize(rows[m].to_numpy() if m in rows else []) for m in metrics}
        cells.append(CellRow(cell.name, "+".join([cell.init, *cell.chain]), cell.protocol,
                             len(rows), failed, per_cell, summ))
        if len(rows) < per_cell:
            warnings.append(f"{cell.name}: {len(rows)} of {per_cell} trials finished"
                            + (f" ({failed} failed or interrupted)" if failed else ""))
    contrasts: list[ContrastRow] = []
    for c in suite.contrasts:
        for m in [c.metric] if c.metric else metrics:
            va = _values(finished, c.a, m)
            vb = _values(finished, c.b, m)
            res = welch(va, vb, c.alternative)
            contrasts.append(ContrastRow(
                a=c.a, b=c.b, label=c.label or f"{c.a} vs {c.b}", metric=m, family=c.family,
                n_a=len(va), n_b=len(vb), test=res,
                significant=not math.isnan(res.p) and res.p < alpha,
            ))
    return ReportData(suite=suite, metrics=metrics, alpha=alpha, cells=cells,
                      contrasts=contrasts, warnings=warnings, n_trials=len(results))


def _values(df: pd.DataFrame, cell: str, metric: str) -> list[float]:
    if not len(df) or metric not in df:
        return []
    return df.loc[df["cell"] == cell, metric].dropna().tolist()
