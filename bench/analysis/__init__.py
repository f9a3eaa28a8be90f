"""Results → what they establish: per-cell evidence, contrasts with three kinds of evidence and
their verdicts, partial orders, and the replication of published numbers.

Uses ``bench.stats`` for every number and the plan for the structure (which stages a cell's
encoder went through, how often each was pre-trained); the report only formats what this
returns. See :mod:`bench.analysis.verdicts` for what a verdict means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.analysis.calibration import CellReliability, cell_reliability
from bench.analysis.cases import TrialPredictions, case_predictions
from bench.analysis.cells import Arm, CellRow, arm, cell_frames, cell_rows
from bench.analysis.controls import ControlRow, control_rows, controls_line
from bench.analysis.efficiency import EfficiencyCurve, efficiency_curves
from bench.analysis.orders import PartialOrder, partial_orders
from bench.analysis.published import ReplicationRow, replication_rows
from bench.analysis.sequential import (
    State,
    design_of,
    planned_seeds,
    run_looks,
    sequential_warnings,
    settle,
    used_results,
)
from bench.analysis.verdicts import CaseEvidence, ContrastRow, decide, evaluate
from bench.contrasts import expand_contrasts
from bench.plan import Plan
from bench.stats import summarize
from bench.stats.bootstrap import (
    BOOTSTRAP_METRICS,
    CasePredictions,
    case_metric,
    resample_counts,
    summarize_difference,
)

__all__ = ["Analysis", "Arm", "CellReliability", "CellRow", "ContrastRow", "ControlRow",
           "PartialOrder", "ReplicationRow", "TrialPredictions", "analyse", "arms_of",
           "contrast_rows", "single_runs"]


@dataclass
class Analysis:
    """Everything the report shows, computed."""

    metrics: list[str]
    alpha: float
    cells: list[CellRow]
    contrasts: list[ContrastRow]
    orders: list[PartialOrder] = field(default_factory=list)
    replication: list[ReplicationRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the case-level evidence could not use, and why."""
    resamples: int = 0
    controls: list[ControlRow] = field(default_factory=list)
    """The suite's controls, judged (see :mod:`bench.analysis.controls`)."""
    reliability: dict[str, CellReliability] = field(default_factory=dict)
    """Cell → its trials' pooled reliability diagram (cells whose predictions were given)."""
    efficiency: list[EfficiencyCurve] = field(default_factory=list)
    """Label-efficiency curves of the protocols expanded by ``label_fractions``."""
    sequential: State | None = None
    """Sequential seeds: the design, its complete looks and where each cell stopped."""

    @property
    def controls_line(self) -> str:
        """``Controls: all n passed`` or ``Controls: FAILED …`` ('' without controls)."""
        return controls_line(self.controls) if self.controls else ""


def single_runs(plan: Plan, a: str, b: str) -> list[str]:
    """Stages that differ between two cells' encoders and were pre-trained once (their
    labels): a verdict between the cells is then about those checkpoints. A stage after a
    replicated one is not: it ran once per replicate path, each time with a seed of its own."""
    keys = plan.stage_keys_of(a) ^ plan.stage_keys_of(b)
    nodes = {s.key: s for s in plan.stages}
    return sorted({nodes[k].label for k in keys
                   if nodes[k].spec.replicates == 1 and not nodes[k].replicate})


class _CaseCache:
    """Resampled metric values per (cell, metric), one resample matrix per test part."""

    def __init__(self, cases: dict[str, CasePredictions], test_of: dict[str, str],
                 resamples: int, seed: int):
        self.cases, self.test_of = cases, test_of
        self.resamples, self.seed = resamples, seed
        self._counts: dict[str, np.ndarray] = {}
        self._values: dict[tuple[str, str], tuple[float, np.ndarray]] = {}

    def usable(self, a: str, b: str, metric: str) -> bool:
        return (self.resamples > 0 and metric in BOOTSTRAP_METRICS and a in self.cases
                and b in self.cases and self.test_of[a] == self.test_of[b])

    def values(self, cell: str, metric: str) -> tuple[float, np.ndarray]:
        key = (cell, metric)
        if key not in self._values:
            cp = self.cases[cell]
            ref = self.test_of[cell]
            if ref not in self._counts:
                self._counts[ref] = resample_counts(cp.n_groups, self.resamples, self.seed)
            point = float(case_metric(metric, cp, np.ones((1, cp.n_groups)))[0])
            self._values[key] = (point, case_metric(metric, cp, self._counts[ref]))
        return self._values[key]

    def evidence(self, a: str, b: str, metric: str, alternative: str,
                 margin: float | None) -> CaseEvidence:
        pa, da = self.values(a, metric)
        pb, db = self.values(b, metric)
        cp = self.cases[a]
        return CaseEvidence(summarize_difference(pa - pb, da - db, alternative, margin=margin,
                                                 n_groups=cp.n_groups, n_cases=len(cp.labels)))


def contrast_rows(plan: Plan, metrics: list[str], arm_of: Callable[[str, str], Arm],
                  cache: _CaseCache | None = None) -> list[ContrastRow]:
    """Every declared contrast on each of its metrics, in declaration order: the statistics
    that do not depend on the rest of its family (``decide`` adds those that do)."""
    suite = plan.suite
    rows: list[ContrastRow] = []
    for c in expand_contrasts(suite.contrasts, plan.cell_names()):
        for m in [c.metric] if c.metric else metrics:
            margin, source = c.margin, "contrast"
            if margin is None:
                margin, source = suite.report.margins.get(m), "report.margins"
            row = evaluate(c.a, c.b, m, arm_of(c.a, m), arm_of(c.b, m), c.alternative, margin,
                           single_runs(plan, c.a, c.b), c.family, c.label, c.paired)
            row.margin_source = source if margin is not None else ""
            if cache is not None and cache.usable(c.a, c.b, m):
                row.case = cache.evidence(c.a, c.b, m, c.alternative, margin)
            rows.append(row)
    return rows


def arms_of(plan: Plan, results: pd.DataFrame) -> Callable[[str, str], Arm]:
    """``arm_of(cell, metric)`` over ``results``, each arm computed once."""
    arms: dict[tuple[str, str], Arm] = {}
    frames = cell_frames(results)

    def arm_of(cell: str, metric: str) -> Arm:
        if (cell, metric) not in arms:
            arms[(cell, metric)] = arm(plan, results, cell, metric, frames)
        return arms[(cell, metric)]

    return arm_of


def analyse(plan: Plan, results: pd.DataFrame, metrics: list[str] | None = None,
            alpha: float | None = None,
            predictions: dict[str, TrialPredictions] | None = None) -> Analysis:
    """Per-cell summaries, every contrast's evidence and verdict, the partial orders and the
    replication table. ``predictions`` (trial key → its test predictions) enable the
    case-level evidence. With sequential seeds the contrasts are those of the looks
    (:mod:`bench.analysis.sequential`) and everything else uses the trials the design used."""
    suite = plan.suite
    metrics = metrics or suite.report.metrics
    alpha = suite.report.alpha if alpha is None else alpha
    design = design_of(plan, alpha)
    state = None
    if design is not None:
        state = run_looks(plan, results, design,
                          lambda res: contrast_rows(plan, metrics, arms_of(plan, res)))
        results = used_results(plan, results, state)
        used = set(results["trial_key"]) if len(results) else set()
        predictions = {k: v for k, v in (predictions or {}).items() if k in used}
    arm_of = arms_of(plan, results)
    cells, warnings = cell_rows(plan, results, metrics, arm_of,
                                planned_seeds(state) if state else None)
    boot = suite.report.bootstrap
    cases, test_of, notes = case_predictions(plan, predictions or {})
    cache = _CaseCache(cases, test_of, boot.resamples, boot.seed)
    if state is None:
        rows = contrast_rows(plan, metrics, arm_of, cache)
        decide(rows, alpha)
    else:
        rows = state.rows
        for row in rows:
            if cache.usable(row.a, row.b, row.metric):
                row.case = cache.evidence(row.a, row.b, row.metric, row.alternative, row.margin)
        decide(rows, alpha)
        settle(state)
        warnings += sequential_warnings(state)
    protocols = list(dict.fromkeys(c.protocol for c in cells))
    nodes_of = {p: [c.cell for c in cells if c.protocol == p] for p in protocols}
    summaries = {c.cell: dict(c.metrics) for c in cells}
    for name, pub in suite.published.items():
        for m in pub.values:
            if m not in summaries.get(name, {}):
                summaries.setdefault(name, {})[m] = summarize(arm_of(name, m).values)
    return Analysis(metrics=metrics, alpha=alpha, cells=cells, contrasts=rows,
                    orders=partial_orders(rows, metrics, protocols, nodes_of),
                    replication=replication_rows(suite, summaries, alpha),
                    warnings=warnings, notes=notes,
                    resamples=boot.resamples if cases else 0,
                    controls=control_rows(suite.controls, rows),
                    reliability=cell_reliability(cases),
                    efficiency=efficiency_curves(plan, cells, metrics), sequential=state)
