"""Report data: the analysis (``bench.analysis``) plus what only a report needs (per-class
tables, the methods paragraph, figures). No statistics are computed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

import pandas as pd

from bench.analysis import (
    Analysis,
    CellRow,
    ContrastRow,
    PartialOrder,
    ReplicationRow,
    TrialPredictions,
    analyse,
)
from bench.analysis.sequential import SPENDING_NAMES
from bench.config.names import parse_ref
from bench.config.schema import Suite
from bench.plan import Plan
from bench.seeds import acting_sources
from bench.track import FINISHED, metric_name

__all__ = ["CellRow", "ContrastRow", "PartialOrder", "ReplicationRow", "ReportData",
           "build_report", "methods_paragraph"]


@dataclass(kw_only=True)
class ReportData(Analysis):
    """Everything a template needs: the analysis, the suite, and what only a report shows."""

    suite: Suite
    per_class: dict[str, list[tuple[str, dict[str, float]]]] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    n_trials: int = 0
    methods: str = ""
    figures: dict[str, str] = field(default_factory=dict)

    @property
    def protocols(self) -> list[str]:
        return list(dict.fromkeys(c.protocol for c in self.cells))

    def cells_of(self, protocol: str) -> list[CellRow]:
        return [c for c in self.cells if c.protocol == protocol]

    def side_by_side(self) -> list[tuple[str, dict[str, CellRow]]]:
        """Rows of encoders with their cell per protocol (linear probe vs fine-tune)."""
        rows: dict[str, dict[str, CellRow]] = {}
        for c in self.cells:
            rows.setdefault(c.encoder, {})[c.protocol] = c
        return list(rows.items())

    @property
    def replicated(self) -> bool:
        """Whether any cell has replicated pre-training (the tables then show ICCs)."""
        return any(c.pretraining == "replicated" for c in self.cells)

    @property
    def has_cases(self) -> bool:
        return any(r.case is not None for r in self.contrasts)

    @property
    def failures(self) -> list[tuple[str, str, int]]:
        """(cell, reason, count) of every failed or interrupted trial."""
        return [(c.cell, reason, n) for c in self.cells for reason, n in c.failures]


def build_report(plan: Plan, results: pd.DataFrame, metrics: list[str] | None = None,
                 alpha: float | None = None,
                 predictions: dict[str, TrialPredictions] | None = None) -> ReportData:
    """The analysis of ``results`` (and of the trials' predictions, when given) as report
    data."""
    a: Analysis = analyse(plan, results, metrics, alpha, predictions)
    finished = results[results["status"] == FINISHED] if len(results) else results
    data = ReportData(**vars(a), suite=plan.suite, n_trials=len(results))
    data.per_class, data.class_names = _per_class(plan, finished)
    data.methods = methods_paragraph(data)
    return data


def _per_class(plan: Plan, finished: pd.DataFrame
               ) -> tuple[dict[str, list[tuple[str, dict[str, float]]]], list[str]]:
    """Mean per-class F1 per cell, grouped by protocol."""
    if not len(finished):
        return {}, []
    classes = list(dict.fromkeys(  # the test sets' classes, as the data names them
        c for cell in plan.cells for c in plan.datasets[parse_ref(cell.spec.test)[0]].classes))
    out: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for name in plan.cell_names():
        cell = plan.replicates_of(name)[0]
        rows = finished[finished["cell"] == name]
        if rows.empty:
            continue
        vals = {c: float(rows[col].mean()) for c in classes
                if (col := metric_name(f"f1_{c}")) in rows}
        out.setdefault(cell.protocol, []).append(("+".join([cell.init, *cell.chain]), vals))
    return out, classes


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


def methods_paragraph(data: ReportData) -> str:
    """An auto-written description of the evidence and the statistics, for a paper's methods
    section: which sources of variance each verdict covers, the tests, corrections, margins."""
    ns = sorted({c.n for c in data.cells})
    n_text = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
    acting = set(acting_sources(data.suite.seeds.vary,
                                min(p.label_fraction for p in data.suite.protocols.values())))
    varied = [v for v in data.suite.seeds.vary if v in acting]  # in the suite's order
    parts = [
        f"Each cell was evaluated over {data.suite.seeds.count} seeds per pre-trained encoder "
        f"({n_text} finished trials per cell; seeds varied: "
        f"{', '.join(varied) or 'none'}). We report the mean ± sample standard "
        "deviation and a 95 % t-interval of the mean over the finite values (failed trials and "
        "non-finite values are counted, never silently dropped).",
    ]
    reps = [c for c in data.cells if c.pretraining == "replicated"]
    if reps:
        ks = sorted({c.replicates for c in reps})
        parts.append(
            f"Pre-training stages marked as replicated were run {'/'.join(map(str, ks))} times "
            "independently, each replicate with its own seed, and every trial was run on each "
            "replicate; contrasts involving them were tested on the replicate means (one value "
            "per pre-training run), and the share of variance due to pre-training is reported "
            "as the intra-class correlation (one-way random-effects ANOVA) with the effective "
            "number of independent trials.")
    if data.contrasts:
        fams = sorted({r.family for r in data.contrasts})
        parts.append(
            "Cells were compared with Welch's unequal-variance t-test (two-sided unless a "
            "direction was declared), with Welch–Satterthwaite 95 % confidence intervals of the "
            "difference, Hedges' g and the probability of superiority as effect sizes. "
            f"p-values were adjusted with Holm's method within each family of contrasts "
            f"({len(fams)} famil{'y' if len(fams) == 1 else 'ies'}, "
            "every declared contrast counted) and, across the report, with Benjamini–Hochberg; "
            f"the significance level was α = {data.alpha}. The minimum detectable difference "
            "is the |Δ| Welch's test detects with 80 % power at the level of the first Holm "
            "step of its family (α / m), for the observed n and standard deviations.")
        seq = data.suite.seeds.sequential
        if seq is not None:
            spend = SPENDING_NAMES[seq.spending]
            parts.append(
                f"Seeds were run sequentially, in looks after {', '.join(map(str, seq.looks))} "
                "seeds per encoder; at each look every contrast was tested against "
                f"group-sequential boundaries (Lan–DeMets α-spending, {spend} type, on the "
                "information fraction of seeds), the p-values and confidence intervals shown "
                "are the repeated p-values and repeated confidence intervals of the look that "
                "decided each contrast (or its last look), Holm-adjusted within each family, and "
                "a cell got no more seeds once every contrast it takes part in was decided"
                + (f" or its conditional power under the current trend fell below "
                   f"{seq.futility:g} (non-binding futility)" if seq.futility else "") + ".")
        single = sorted({s for r in data.contrasts for s in r.single_runs})
        if single:
            parts.append(
                "Verdicts marked “1 pre-training run” compare encoders that differ in a stage "
                f"pre-trained once ({', '.join(single)}): they cover the variation between "
                "evaluation seeds around those checkpoints, not the variation between "
                "pre-training runs, and so are about these checkpoints rather than the "
                "pre-training methods.")
        margins = sorted({(r.metric, r.margin, r.margin_source) for r in data.contrasts
                          if r.margin is not None})
        if margins:
            text = "; ".join(f"±{m:g} on {metric}" + (" (report.margins)"
                                                        if src == "report.margins" else "")
                             for metric, m, src in margins)
            parts.append(
                "Equivalence was tested with two one-sided t-tests (TOST, unequal variances; "
                f"Holm-adjusted like the difference tests) within the declared margins: {text}. "
                "Contrasts without a declared margin were not tested for equivalence; a "
                "difference that is not significant is reported as inconclusive, never as equal.")
        else:
            parts.append(
                "No equivalence margin was declared, so no contrast was tested for equivalence; "
                "a difference that is not significant is reported as inconclusive, never as "
                "equal.")
        if data.has_cases:
            parts.append(
                f"Case-level evidence: a paired bootstrap over the test set's groups (patients "
                f"or lesions; {data.resamples} resamples, the same for both cells of a "
                "contrast, seeds averaged within a cell) gives a percentile 95 % interval of Δ "
                "for new patients and a second, Holm-adjusted verdict; it is conditional on the "
                "trained models and does not include the variation between pre-training runs "
                "or seeds.")
    if data.replication:
        parts.append(
            "Published results were compared with the measured ones by Welch's test from "
            "summary statistics (two-sided, Holm across the replication table).")
    parts.append(
        f"Software: bench {_version('bench')}, PyTorch {_version('torch')}, "
        f"SciPy {_version('scipy')}, statsmodels {_version('statsmodels')}.")
    return " ".join(parts)
