"""One verdict across several datasets: the encoders several suites share, compared with
rliable's aggregates (:mod:`bench.stats.aggregate`).

Each suite is a *task*; within one protocol (by name), a *method* is an encoder
(``init+chain``) whose cell every suite has. Its runs on a task are the units its verdicts use
there: replicate means when its pre-training was replicated, else trials. Scores are min–max
normalised per task (0 = the worst run of any method on it, 1 = the best; reversed for ece,
brier and nll), so tasks weigh alike. Reported per metric and protocol: each suite's own
verdicts side by side, the mean rank of each method, the IQM of its normalised scores with a
stratified-bootstrap 95 % CI, and for every pair of methods the probability of improvement
P(A > B) with its CI.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.analysis import Analysis
from bench.analysis.cells import arm, cell_frames
from bench.config.protocols import a_better_if_above
from bench.errors import BenchError
from bench.plan import Plan
from bench.stats import Summary
from bench.stats.aggregate import (
    mean_ranks,
    min_max_normalise,
    pooled_iqm,
    prob_improvement,
    stratified_bootstrap,
)

RESAMPLES = 2000
"""Stratified bootstrap resamples (seeded: the same report every time)."""


@dataclass
class Task:
    """One suite's share of a comparison."""

    name: str
    plan: Plan
    results: pd.DataFrame
    analysis: Analysis


@dataclass
class Interval:
    point: float
    low: float
    high: float


@dataclass
class MetricComparison:
    """Everything the cross-dataset report shows for one metric and protocol."""

    metric: str
    protocol: str
    methods: list[str]
    """Encoders, each with a cell of this protocol in every task."""
    summaries: dict[str, dict[str, Summary]]
    """task → method → its summary over its units on that task."""
    units: dict[str, dict[str, int]]
    """task → method → its number of units (replicate means or trials)."""
    verdicts: list[tuple[str, dict[str, str]]]
    """(contrast label, task → verdict) of the contrasts declared in more than one suite."""
    ranks: dict[str, float]
    iqm: dict[str, Interval]
    improvement: dict[tuple[str, str], Interval] = field(default_factory=dict)
    """(A, B) → P(A better than B) across the tasks."""


@dataclass
class Comparison:
    tasks: list[str]
    metrics: list[MetricComparison]


def compare(tasks: list[Task], metrics: list[str], resamples: int = RESAMPLES,
            seed: int = 0) -> Comparison:
    """The cells every task has, compared on each metric."""
    if len(tasks) < 2:
        raise BenchError("a comparison across datasets needs at least two suites")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise BenchError(f"two suites share a name ({names}): each task needs its own")
    protocols = list(dict.fromkeys(c.protocol for c in tasks[0].analysis.cells))
    out = Comparison(names, [])
    for protocol in protocols:
        cells_of = [{c.encoder: c for c in t.analysis.cells if c.protocol == protocol and c.n > 0}
                    for t in tasks]
        methods = [e for e in cells_of[0] if all(e in other for other in cells_of[1:])]
        if len(methods) < 2:
            continue
        for metric in metrics:
            out.metrics.append(_compare(tasks, cells_of, protocol, methods, metric, resamples,
                                        seed))
    if not out.metrics:
        raise BenchError("no protocol has two encoders with finished trials in every suite; "
                         "an encoder is matched by its name (init+chain) and a protocol by its "
                         "name")
    return out


def _compare(tasks: list[Task], cells_of: list[dict], protocol: str, methods: list[str],
             metric: str, resamples: int, seed: int) -> MetricComparison:
    names = [t.name for t in tasks]
    frames = {t.name: cell_frames(t.results) for t in tasks}
    runs = {t.name: {e: arm(t.plan, t.results, cells[e].cell, metric, frames[t.name])
                     .unit_values() for e in methods}
            for t, cells in zip(tasks, cells_of, strict=True)}
    up = a_better_if_above(metric)
    norm = min_max_normalise(runs, up)
    per_method = {e: [norm[t][e] for t in names] for e in methods}
    summaries = {t.name: {e: (cells[e].unit_metrics.get(metric) or cells[e].metrics[metric])
                          for e in methods} for t, cells in zip(tasks, cells_of, strict=True)}
    means = {t: {e: float(np.mean(runs[t][e])) for e in methods} for t in names}
    row = MetricComparison(metric, protocol, methods, summaries,
                           {t: {e: len(v) for e, v in by.items()} for t, by in runs.items()},
                           _verdicts(tasks, metric, cells_of), mean_ranks(means, up), {})
    for i, e in enumerate(methods):
        row.iqm[e] = Interval(*stratified_bootstrap(pooled_iqm, [per_method[e]], resamples,
                                                    seed + i))
    for a, b in itertools.combinations(methods, 2):
        row.improvement[(a, b)] = Interval(*stratified_bootstrap(
            prob_improvement, [per_method[a], per_method[b]], resamples, seed))
    return row


def _verdicts(tasks: list[Task], metric: str, cells_of: list[dict]
              ) -> list[tuple[str, dict[str, str]]]:
    seen: dict[str, dict[str, str]] = {}
    for t, cells in zip(tasks, cells_of, strict=True):
        names = {c.cell: e for e, c in cells.items()}
        for r in t.analysis.contrasts:
            if r.metric == metric and r.a in names and r.b in names:
                seen.setdefault(f"{names[r.a]} vs {names[r.b]}", {})[t.name] = r.shown_verdict
    return [(label, v) for label, v in seen.items() if len(v) > 1]
