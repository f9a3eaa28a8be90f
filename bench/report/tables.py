"""Report data built from the results table and the suite's contrasts (no training here).

Verdict of a contrast on a metric: with p_Holm (Holm within the contrast's family) < α the better
cell is declared better (A ≻ B, or B ≻ A for a two-sided test with Δ < 0); otherwise, if the TOST
equivalence test within ±margin has p < α, the cells are declared equivalent (A ≈ B); otherwise
the result is "inconclusive" — a non-significant difference is never read as equality.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

import pandas as pd

from bench.config.schema import Suite
from bench.contrasts import expand_contrasts
from bench.plan import Plan
from bench.stats import (
    Summary,
    WelchResult,
    benjamini_hochberg,
    hedges_g,
    holm,
    min_detectable_effect,
    paired,
    pooled_sd,
    prob_superiority,
    summarize,
    tost,
    welch,
)
from bench.track import FINISHED


@dataclass
class CellRow:
    """One line of a results table."""

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
    margin: float
    n_a: int
    n_b: int
    test: WelchResult
    p_holm: float = math.nan
    p_bh: float = math.nan
    g: float = math.nan
    g_low: float = math.nan
    g_high: float = math.nan
    prob_a_better: float = math.nan
    tost_p: float = math.nan
    mde: float = math.nan
    paired_t_p: float | None = None
    wilcoxon_p: float | None = None
    verdict: str = "inconclusive"

    @property
    def significant(self) -> bool:
        return self.verdict in ("A ≻ B", "B ≻ A")

    @property
    def equivalent(self) -> bool:
        return self.verdict == "A ≈ B"


@dataclass
class PartialOrder:
    """The relations the contrasts establish between the cells of one protocol on one metric."""

    metric: str
    protocol: str
    nodes: list[str]
    better: list[tuple[str, str]]
    equivalent: list[tuple[str, str]]
    inconclusive: list[tuple[str, str]]

    def hasse(self) -> list[tuple[str, str]]:
        """Transitive reduction of ``better`` (an edge a ≻ b is dropped when a ≻ c ≻ … ≻ b)."""
        succ: dict[str, set[str]] = defaultdict(set)
        for a, b in self.better:
            succ[a].add(b)

        def reach(start: str) -> set[str]:
            seen, stack = set(), list(succ[start])
            while stack:
                x = stack.pop()
                if x not in seen:
                    seen.add(x)
                    stack.extend(succ[x])
            return seen

        keep = []
        for a, b in self.better:
            if not any(b in reach(c) for c in succ[a] if c != b):
                keep.append((a, b))
        return keep


@dataclass
class ReportData:
    """Everything a template needs."""

    suite: Suite
    metrics: list[str]
    alpha: float
    cells: list[CellRow]
    contrasts: list[ContrastRow]
    orders: list[PartialOrder] = field(default_factory=list)
    per_class: dict[str, list[tuple[str, dict[str, float]]]] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
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


def _verdict(row: ContrastRow, alternative: str, alpha: float) -> str:
    if math.isfinite(row.p_holm) and row.p_holm < alpha:
        if alternative == "greater" or (alternative == "two-sided" and row.test.delta > 0):
            return "A ≻ B"
        return "B ≻ A"
    if math.isfinite(row.tost_p) and row.tost_p < alpha:
        return "A ≈ B"
    return "inconclusive"


def build_report(plan: Plan, results: pd.DataFrame, metrics: list[str] | None = None,
                 alpha: float | None = None) -> ReportData:
    """Per-cell summaries, every contrast's statistics and verdict, and the partial orders."""
    suite = plan.suite
    metrics = metrics or suite.report.metrics
    alpha = suite.report.alpha if alpha is None else alpha
    finished = results[results["status"] == FINISHED] if len(results) else results
    values: dict[tuple[str, str], list[float]] = {}
    by_cell = {name: df for name, df in finished.groupby("cell")} if len(finished) else {}
    cells: list[CellRow] = []
    warnings: list[str] = []
    planned = suite.seeds.count
    failed_counts = (results[results["status"].isin(["FAILED", "KILLED"])]
                     .groupby("cell").size().to_dict() if len(results) else {})
    for cell in plan.cells:
        rows = by_cell.get(cell.name)
        summ = {}
        for m in metrics:
            v = rows.sort_values("seed")[m].tolist() if rows is not None and m in rows else []
            values[(cell.name, m)] = v
            summ[m] = summarize(v)
        n = 0 if rows is None else len(rows)
        failed = int(failed_counts.get(cell.name, 0))
        cells.append(CellRow(cell.name, "+".join([cell.init, *cell.chain]), cell.protocol, n,
                             failed, planned, summ))
        if n < planned:
            warnings.append(f"{cell.name}: {n} of {planned} trials finished"
                            + (f" ({failed} failed or interrupted)" if failed else ""))
    names = [c.name for c in plan.cells]
    specs = expand_contrasts(suite.contrasts, names)
    rows_out: list[ContrastRow] = []
    alternatives: list[str] = []
    seeds_of = {c: (by_cell[c].sort_values("seed")["seed"].tolist() if c in by_cell else [])
                for c in names}
    for c in specs:
        for m in [c.metric] if c.metric else metrics:
            va = values.get((c.a, m)) or _column(by_cell, c.a, m)
            vb = values.get((c.b, m)) or _column(by_cell, c.b, m)
            row = ContrastRow(a=c.a, b=c.b, label=c.label or f"{c.a} vs {c.b}", metric=m,
                              family=c.family, margin=c.margin, n_a=len(va), n_b=len(vb),
                              test=welch(va, vb, c.alternative))
            row.g, row.g_low, row.g_high = hedges_g(va, vb)
            row.prob_a_better = prob_superiority(va, vb)
            row.tost_p = tost(va, vb, c.margin)
            row.mde = min_detectable_effect(len(va), len(vb), alpha, pooled_sd(va, vb),
                                            c.alternative)
            if c.paired:
                common = sorted(set(seeds_of[c.a]) & set(seeds_of[c.b]))
                pa = [va[seeds_of[c.a].index(s)] for s in common]
                pb = [vb[seeds_of[c.b].index(s)] for s in common]
                row.paired_t_p, row.wilcoxon_p = paired(pa, pb, c.alternative)
            rows_out.append(row)
            alternatives.append(c.alternative)
    families: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows_out):
        families[r.family].append(i)
    for idx in families.values():
        for i, p in zip(idx, holm([rows_out[i].test.p for i in idx]), strict=True):
            rows_out[i].p_holm = p
    for r, p in zip(rows_out, benjamini_hochberg([r.test.p for r in rows_out]), strict=True):
        r.p_bh = p
    for r, alt in zip(rows_out, alternatives, strict=True):
        r.verdict = _verdict(r, alt, alpha)
    data = ReportData(suite=suite, metrics=metrics, alpha=alpha, cells=cells,
                      contrasts=rows_out, warnings=warnings, n_trials=len(results))
    data.orders = _orders(data)
    data.per_class, data.class_names = _per_class(plan, finished)
    data.methods = methods_paragraph(data)
    return data


def _column(by_cell: dict, cell: str, metric: str) -> list[float]:
    df = by_cell.get(cell)
    if df is None or metric not in df:
        return []
    return df.sort_values("seed")[metric].dropna().tolist()


def _orders(data: ReportData) -> list[PartialOrder]:
    out = []
    for m in data.metrics:
        for proto in data.protocols:
            nodes = [c.cell for c in data.cells_of(proto)]
            rel = [r for r in data.contrasts if r.metric == m and r.a in nodes and r.b in nodes]
            better = [(r.a, r.b) if r.verdict == "A ≻ B" else (r.b, r.a)
                      for r in rel if r.significant]
            eq = [(r.a, r.b) for r in rel if r.equivalent]
            inc = [(r.a, r.b) for r in rel if r.verdict == "inconclusive"]
            if rel:
                out.append(PartialOrder(m, proto, nodes, better, eq, inc))
    return out


def _per_class(plan: Plan, finished: pd.DataFrame
               ) -> tuple[dict[str, list[tuple[str, dict[str, float]]]], list[str]]:
    """Mean per-class F1 per cell, grouped by protocol."""
    if not len(finished):
        return {}, []
    classes = sorted({c[3:] for c in finished.columns if c.startswith("f1_")
                      and c not in ("f1_weighted", "f1_macro")})
    out: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for cell in plan.cells:
        rows = finished[finished["cell"] == cell.name]
        if rows.empty:
            continue
        vals = {c: float(rows[f"f1_{c}"].mean()) for c in classes if f"f1_{c}" in rows}
        out.setdefault(cell.protocol, []).append(("+".join([cell.init, *cell.chain]), vals))
    return out, classes


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


def methods_paragraph(data: ReportData) -> str:
    """An auto-written description of the statistics, for a paper's methods section."""
    ns = sorted({c.n for c in data.cells})
    n_text = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
    fams = sorted({r.family for r in data.contrasts})
    margins = sorted({r.margin for r in data.contrasts})
    parts = [
        f"Each cell was evaluated over {data.suite.seeds.count} seeds ({n_text} finished trials "
        f"per cell; seeds varied: {', '.join(data.suite.seeds.vary)}). We report the mean ± "
        "sample standard deviation and a 95 % t-interval of the mean.",
    ]
    if data.contrasts:
        parts.append(
            "Cells were compared with Welch's unequal-variance t-test (two-sided unless a "
            "direction was declared), with Welch–Satterthwaite 95 % confidence intervals of the "
            "difference, Hedges' g and the probability of superiority as effect sizes. "
            f"p-values were adjusted with Holm's method within each family of contrasts "
            f"({len(fams)} famil{'y' if len(fams) == 1 else 'ies'}) and, across the report, "
            f"with Benjamini–Hochberg; the significance level was α = {data.alpha}. "
            "Equivalence was tested with two one-sided t-tests (TOST, unequal variances) "
            f"within a margin of ±{', '.join(f'{m:g}' for m in margins)}; a difference that is "
            "neither significant nor equivalent is reported as inconclusive.")
    parts.append(
        f"Software: bench {_version('bench')}, PyTorch {_version('torch')}, "
        f"SciPy {_version('scipy')}, statsmodels {_version('statsmodels')}.")
    return " ".join(parts)
