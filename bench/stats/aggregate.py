"""Aggregates over several tasks (datasets), after Agarwal et al. 2021, "Deep Reinforcement
Learning at the Edge of the Statistical Precipice" (NeurIPS; the rliable library): the
interquartile mean of normalised scores, the probability of improvement, and their stratified
bootstrap confidence intervals.

A *task* holds one array of run scores per method (runs: independent repetitions; their number
may differ between tasks and methods). The stratified bootstrap resamples the runs of each
(method, task) with replacement, independently, and recomputes the statistic; the CI is the
percentile interval of the resampled values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

Scores = Sequence[np.ndarray]
"""One method's run scores per task: ``scores[t]`` is (n_t,)."""


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50 %, ⌊n/4⌋ values cut from each end (what
    ``scipy.stats.trim_mean(x, 0.25)`` computes; written out here because the bootstrap calls
    it thousands of times and scipy's argument handling dominated the time)."""
    v = np.sort(np.asarray(values, float))
    cut = len(v) // 4
    return float(v[cut:len(v) - cut].mean()) if len(v) else math.nan


def pooled_iqm(scores: Scores) -> float:
    """IQM of all runs of all tasks pooled (rliable's aggregate IQM)."""
    return iqm(np.concatenate([np.asarray(s, float) for s in scores]))


def prob_improvement(x: Scores, y: Scores) -> float:
    """P(X > Y): the mean over tasks of P(x > y) + ½ P(x = y) for a random run x of X and y of
    Y on that task (the Mann–Whitney statistic; rliable's probability of improvement)."""
    per_task = []
    for a, b in zip(x, y, strict=True):
        a, b = np.asarray(a, float), np.asarray(b, float)
        diff = a[:, None] - b[None, :]
        per_task.append(float((diff > 0).mean() + 0.5 * (diff == 0).mean()))
    return float(np.mean(per_task))


def _resample(rng: np.random.Generator, scores: Scores) -> list[np.ndarray]:
    out = []
    for s in scores:
        s = np.asarray(s, float)
        out.append(s[rng.integers(0, len(s), len(s))])
    return out


def stratified_bootstrap(statistic: Callable[..., float], groups: Sequence[Scores],
                         resamples: int = 2000, seed: int = 0,
                         confidence: float = 0.95) -> tuple[float, float, float]:
    """(point, low, high): ``statistic(*groups)`` and its percentile CI, each method's runs
    resampled within every task. ``groups`` is one :data:`Scores` per argument of
    ``statistic`` (one method for the IQM, two for the probability of improvement)."""
    point = statistic(*groups)
    rng = np.random.default_rng(seed)
    values = np.array([statistic(*(_resample(rng, g) for g in groups))
                       for _ in range(resamples)])
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(point), float(low), float(high)


def min_max_normalise(tasks: dict[str, dict[str, np.ndarray]], larger_is_better: bool = True
                      ) -> dict[str, dict[str, np.ndarray]]:
    """Per task, scores mapped to [0, 1] by the smallest and largest run score of any method
    on it (0 = the worst run, 1 = the best; for a smaller-is-better metric the map is reversed).
    A task where every run scores the same maps to 0.5."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for task, by_method in tasks.items():
        allv = np.concatenate([np.asarray(v, float) for v in by_method.values()])
        lo, hi = float(allv.min()), float(allv.max())
        out[task] = {}
        for m, v in by_method.items():
            v = np.asarray(v, float)
            z = (v - lo) / (hi - lo) if hi > lo else np.full(len(v), 0.5)
            out[task][m] = z if larger_is_better else 1 - z
    return out


def mean_ranks(means: dict[str, dict[str, float]], larger_is_better: bool = True
               ) -> dict[str, float]:
    """Each method's rank on every task (1 = best; ties share the mean rank), averaged over
    the tasks. ``means``: task → method → mean score (every method on every task)."""
    methods = list(next(iter(means.values())))
    ranks = {m: [] for m in methods}
    for by_method in means.values():
        v = np.array([by_method[m] for m in methods])
        r = stats.rankdata(-v if larger_is_better else v, method="average")
        for m, x in zip(methods, r, strict=True):
            ranks[m].append(float(x))
    return {m: float(np.mean(r)) for m, r in ranks.items()}
