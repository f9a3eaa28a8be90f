"""Contrasts → evidence and verdicts, with the sources of variance each one covers.

Three kinds of evidence per contrast A − B on one metric:

- **seeds**: Welch's test over the trials. It measures how much the evaluation itself varies
  (head init, batch order, augmentation, TTA) around the checkpoints the cells were evaluated on.
- **replicates**: Welch's test over the pre-training replicate means, when a cell's chain has
  a replicated stage (``replicates: k``): each replicate is one independent pre-training run,
  so the test is about the pre-training method, not one checkpoint of it. A cell without
  replicated pre-training enters with its trials. This is the primary test whenever it exists
  and no stage that differs between the cells ran only once.
- **cases**: a paired bootstrap over the test set's groups (patients / lesions), seeds averaged
  within a cell: is the difference expected to hold on new patients?

The primary verdict uses the replicate-level test when it exists, else the seed-level one; when
the cells differ in a stage that was pre-trained once (not replicated, and not after a replicated
stage, whose every path runs it anew), it is about those checkpoints and says so
("(1 pre-training run)"). A ≻ B when the Holm-adjusted p (within the contrast's family, every
declared contrast counted) is below α; A ≈ B only when a margin is declared (on the contrast or
in ``report.margins``) and the Holm-adjusted TOST p is below α; otherwise *inconclusive*. A
contrast whose arms are both constant is *degenerate*: no test, the exact Δ is shown; one with
fewer than two values in an arm is *not testable*, and says why.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from bench.analysis.cells import Arm
from bench.config.protocols import a_better_if_above
from bench.stats import (
    Moments,
    WelchResult,
    benjamini_hochberg,
    hedges_moments,
    holm,
    holm_levels,
    paired,
    prob_superiority,
    tost_moments,
    welch_moments,
)
from bench.stats.bootstrap import BootstrapResult
from bench.stats.power import min_detectable_effects

BETTER, WORSE, EQUIVALENT = "A ≻ B", "B ≻ A", "A ≈ B"
INCONCLUSIVE, DEGENERATE, UNTESTABLE = "inconclusive", "degenerate", "not testable"
SINGLE_RUN = "1 pre-training run"


@dataclass
class CaseEvidence:
    """The paired group bootstrap of a contrast, with its own Holm-adjusted verdict."""

    result: BootstrapResult
    p_holm: float = math.nan
    p_equivalent_holm: float = math.nan
    verdict: str = INCONCLUSIVE


@dataclass
class ContrastRow:
    """One contrast on one metric: every kind of evidence and the verdict."""

    a: str
    b: str
    label: str
    metric: str
    family: str
    margin: float | None
    n_a: int
    n_b: int
    test: WelchResult
    """Seed-level Welch test over the finite trial values."""
    alternative: str = "two-sided"
    margin_source: str = ""
    evidence: str = "seeds"
    """``seeds`` or ``replicates``: which test the verdict uses."""
    replicate_test: WelchResult | None = None
    units_a: int = 0
    units_b: int = 0
    single_runs: list[str] = field(default_factory=list)
    """Stages that differ between the cells and were pre-trained once."""
    dropped_a: int = 0
    dropped_b: int = 0
    p_holm: float = math.nan
    p_bh: float = math.nan
    g: float = math.nan
    g_low: float = math.nan
    g_high: float = math.nan
    prob_a_better: float = math.nan
    """P(a random trial of A is better than one of B), ties counted half: larger on most
    metrics, smaller on ece, brier and nll."""
    tost_p: float = math.nan
    tost_p_holm: float = math.nan
    mde: float = math.nan
    mde_alpha: float = math.nan
    paired_t_p: float | None = None
    wilcoxon_p: float | None = None
    degenerate: str = ""
    """Why no test is possible ('' when one is): both arms constant, or too few values."""
    p_opposite: float = math.nan
    case: CaseEvidence | None = None
    verdict: str = INCONCLUSIVE
    opposite: bool = False
    """A one-sided contrast whose data point the other way (opposite one-sided p < α,
    unadjusted): not a verdict, but never hidden."""
    unit_moments: tuple[Moments, Moments] = (Moments(math.nan, math.nan, 0),) * 2
    """Moments of the primary test's units (trials or replicate means) of A and B."""
    look: int = 0
    """Sequential seeds: the look (1-based) whose data the row shows, where its verdict was
    reached when decided; 0 for a fixed number of seeds."""
    looks: int = 0
    """Sequential seeds: the design's number of looks (0 for a fixed number of seeds)."""
    futile: bool = False
    """Sequential seeds: stopped by the futility rule (the verdict stays inconclusive)."""

    @property
    def primary(self) -> WelchResult:
        """The test the verdict uses."""
        return self.replicate_test if self.replicate_test is not None else self.test

    @property
    def scope(self) -> str:
        """'' or why the verdict is about particular checkpoints."""
        return SINGLE_RUN if self.single_runs else ""

    @property
    def shown_verdict(self) -> str:
        """The verdict with its scope and, with sequential seeds, its look, e.g.
        ``A ≻ B (1 pre-training run)``, ``A ≻ B (look 1 of 3)``,
        ``inconclusive (futile at look 2 of 3)``."""
        notes = [self.scope] if self.scope else []
        if self.looks:
            notes.append(f"{'futile at ' if self.futile else ''}look {self.look} of {self.looks}")
        return f"{self.verdict} ({'; '.join(notes)})" if notes else self.verdict

    @property
    def significant(self) -> bool:
        return self.verdict in (BETTER, WORSE)

    @property
    def equivalent(self) -> bool:
        return self.verdict == EQUIVALENT


def _degenerate(a: Moments, b: Moments, unit: str) -> str:
    return (f"both arms are constant (A = {a.mean:.4g} and B = {b.mean:.4g} in every {unit}): "
            f"Δ = {a.mean - b.mean:.4g} exactly on these runs, with no variance to test it "
            "against")


def evaluate(a: str, b: str, metric: str, arm_a: Arm, arm_b: Arm, alternative: str,
             margin: float | None, single_runs: list[str], family: str = "default",
             label: str = "", matched: bool = False) -> ContrastRow:
    """Every statistic of one contrast that does not depend on the rest of its family."""
    va, vb = arm_a.values, arm_b.values
    ma, mb = Moments.of(va), Moments.of(vb)
    row = ContrastRow(a=a, b=b, label=label or f"{a} vs {b}", metric=metric, family=family,
                      margin=margin, n_a=len(va), n_b=len(vb),
                      test=welch_moments(ma, mb, alternative), alternative=alternative,
                      single_runs=single_runs, dropped_a=arm_a.dropped,
                      dropped_b=arm_b.dropped)
    ua, ub = va, vb
    row.unit_moments = (ma, mb)
    if (arm_a.replicated or arm_b.replicated) and not single_runs:
        ua, ub = arm_a.unit_values(), arm_b.unit_values()
        row.evidence = "replicates"
        row.unit_moments = (Moments.of(ua), Moments.of(ub))
        row.replicate_test = welch_moments(*row.unit_moments, alternative)
    row.units_a, row.units_b = len(ua), len(ub)
    row.g, row.g_low, row.g_high = hedges_moments(ma, mb)
    row.prob_a_better = (prob_superiority(va, vb) if a_better_if_above(metric)
                         else prob_superiority(vb, va))
    if margin is not None:
        row.tost_p = tost_moments(*row.unit_moments, margin)
    primary = row.primary
    unit = "replicate" if row.evidence == "replicates" else "trial"
    if primary.degenerate:
        row.degenerate = _degenerate(*row.unit_moments, unit)
    elif len(ua) < 2 or len(ub) < 2:
        what = "replicate(s)" if unit == "replicate" else "finite value(s)"
        row.degenerate = (f"too few values to test: A has {len(ua)} {what}, B has {len(ub)} "
                          "(at least 2 each are needed)")
    elif alternative != "two-sided" and math.isfinite(primary.p):
        row.p_opposite = 1.0 - primary.p
    if matched:
        pos_b = {k: i for i, k in enumerate(arm_b.keys)}
        common = [(i, pos_b[k]) for i, k in enumerate(arm_a.keys) if k in pos_b]
        row.paired_t_p, row.wilcoxon_p = paired([va[i] for i, _ in common],
                                                [vb[j] for _, j in common], alternative)
    return row


def _direction(delta: float, alternative: str, metric: str) -> str:
    """A ≻ B when A's value is significantly above B's on a larger-is-better metric, or below
    it on ece, brier or nll."""
    above = alternative == "greater" or (alternative == "two-sided" and delta > 0)
    return BETTER if above == a_better_if_above(metric) else WORSE


def _verdict(p_holm: float, tost_holm: float, delta: float, alternative: str,
             alpha: float, metric: str) -> str:
    if math.isfinite(p_holm) and p_holm < alpha:
        return _direction(delta, alternative, metric)
    if math.isfinite(tost_holm) and tost_holm < alpha:
        return EQUIVALENT
    return INCONCLUSIVE


def _holm_into(rows: list[ContrastRow], pvalues: list[float], name: str) -> None:
    """Holm over ``pvalues`` of ``rows`` (NaN counted in m), stored as attribute ``name``."""
    for r, p in zip(rows, holm(pvalues), strict=True):
        setattr(r, name, p)


def decide(rows: list[ContrastRow], alpha: float) -> None:
    """Holm within each family and BH across the report on the primary p-values (every
    declared contrast counted, also one without a p-value), the same for the TOST p-values of
    the contrasts with a margin and for the case-level bootstrap; the detectable effect at the
    level of the family's first Holm step; and the verdicts."""
    families: dict[str, list[ContrastRow]] = defaultdict(list)
    for r in rows:
        families[r.family].append(r)
    nan = math.nan
    for fam in families.values():
        margined = [r for r in fam if r.margin is not None]
        _holm_into(fam, [r.primary.p for r in fam], "p_holm")
        _holm_into(margined, [r.tost_p for r in margined], "tost_p_holm")
        case_p = holm([r.case.result.p if r.case else nan for r in fam])
        case_eq = holm([r.case.result.p_equivalent if r.case else nan for r in margined])
        eq_of = {id(r): p for r, p in zip(margined, case_eq, strict=True)}
        for r, p in zip(fam, case_p, strict=True):
            r.mde_alpha = holm_levels(len(fam), alpha)
            if r.case is not None:
                r.case.p_holm, r.case.p_equivalent_holm = p, eq_of.get(id(r), nan)
    mdes = min_detectable_effects([r.unit_moments for r in rows], [r.mde_alpha for r in rows],
                                  [r.alternative for r in rows])
    for r, mde, p in zip(rows, mdes, benjamini_hochberg([r.primary.p for r in rows]),
                         strict=True):
        r.mde, r.p_bh = float(mde), p
        r.opposite = math.isfinite(r.p_opposite) and r.p_opposite < alpha
        if r.degenerate:
            r.verdict = DEGENERATE if r.primary.degenerate else UNTESTABLE
        else:
            r.verdict = _verdict(r.p_holm, r.tost_p_holm, r.primary.delta, r.alternative, alpha,
                                 r.metric)
        if r.case is not None:
            c = r.case
            c.verdict = _verdict(c.p_holm, c.p_equivalent_holm, c.result.delta, r.alternative,
                                 alpha, r.metric)
