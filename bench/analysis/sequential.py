"""Sequential seeds: the looks of a group-sequential design, who is decided at each, and the
verdicts with their sequential p-values and repeated CIs.

With ``seeds.sequential.looks: [n_1, …, n_K]`` a cell's trials are analysed in waves: look k
uses the trials whose seed index is below n_k (per pre-trained encoder), at information
fraction t_k = n_k / n_K. At each complete look every declared contrast is tested on those
trials as the fixed design would (the same primary test, seed- or replicate-level) and its
nominal p-value turned into a *repeated p-value* (:func:`bench.stats.sequential.repeated_p`,
Lan–DeMets spending); a contrast's sequential p-value is the smallest over its looks, and Holm
within its family runs on these (the group-sequential Holm procedure), as does Holm on the
repeated TOST p-values of the contrasts with a margin. A contrast is *decided* at the first look
where it is ≻/≺ (efficacy) or ≈ (TOST at the same spending), or where a declared futility rule
says it will not become so (conditional power below ``futility``, for contrasts without a
margin; non-binding, so the level is kept). Its verdict, Δ and repeated CI are those of that
look. A cell gets no more seeds once every contrast it takes part in is decided; a cell in no
contrast gets all of them.

For replicate-level evidence the fractions are seeds per encoder, which understates how much
of the information the early looks hold (the replicate means vary with the pre-training too):
the design then spends its α later than planned, which is conservative.

A look is *complete* when every trial it needs (cells still open) has finished or failed (a
killed trial is redone, so its look waits for it); decisions are taken at complete looks only,
so what runs next is a function of the ended trials, the same in every worker and after any
resume.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pandas as pd

from bench.analysis.verdicts import BETTER, EQUIVALENT, WORSE, ContrastRow, decide
from bench.plan import Plan, Trial
from bench.stats.sequential import conditional_power, repeated_ci, repeated_p
from bench.track import FAILED, FINISHED

FUTILE = "futile"
SPENDING_NAMES = {"obrien_fleming": "O'Brien–Fleming", "pocock": "Pocock"}
ENDED = (FINISHED, FAILED)


@dataclass(frozen=True)
class Design:
    """The looks (seeds per encoder), spending function, futility threshold and level."""

    looks: tuple[int, ...]
    spending: str
    futility: float | None
    alpha: float

    @property
    def fractions(self) -> tuple[float, ...]:
        return tuple(n / self.looks[-1] for n in self.looks)

    @property
    def spending_name(self) -> str:
        """``O'Brien–Fleming`` or ``Pocock``."""
        return SPENDING_NAMES[self.spending]


def design_of(plan: Plan, alpha: float | None = None) -> Design | None:
    """The suite's sequential design, or None for a fixed number of seeds."""
    seq = plan.suite.seeds.sequential
    if seq is None:
        return None
    a = plan.suite.report.alpha if alpha is None else alpha
    return Design(tuple(seq.looks), seq.spending, seq.futility, a)


@dataclass
class State:
    """Where a sequential suite stands.

    Attributes:
        complete: looks complete so far (0 … K).
        stop: cell name → index of the look after which it gets no more seeds (None: open).
        decided: contrast row index → (look index, verdict or ``futile``).
        rows: the contrasts as the report shows them (sequential p-values, repeated CIs).
    """

    design: Design
    complete: int = 0
    stop: dict[str, int | None] = field(default_factory=dict)
    decided: dict[int, tuple[int, str]] = field(default_factory=dict)
    rows: list[ContrastRow] = field(default_factory=list)

    def seeds_of(self, cell: str) -> int:
        """Seeds per encoder the cell gets now: its stopping look's, else the next look's."""
        k = self.stop.get(cell)
        if k is None:
            k = min(self.complete, len(self.design.looks) - 1)
        return self.design.looks[k]

    def allows(self, trial: Trial) -> bool:
        """Whether a trial belongs to a look its cell gets (now)."""
        return trial.index < self.seeds_of(trial.cell.name)

    def stopped(self, trial: Trial) -> bool:
        """Whether a trial will never run: its cell stopped at an earlier look."""
        k = self.stop.get(trial.cell.name)
        return k is not None and trial.index >= self.design.looks[k]


RowsOf = Callable[[pd.DataFrame], list[ContrastRow]]
"""Results (a subset of the trials) → every declared contrast's row, in declaration order."""


def _within(plan: Plan, results: pd.DataFrame, seeds: dict[str, int]) -> pd.DataFrame:
    """The results of trials whose seed index is below their cell's ``seeds``."""
    if not len(results):
        return results
    index = {t.key: t.index for t in plan.trials}
    idx = results["trial_key"].map(index)
    limit = results["cell"].map(seeds)
    return results[idx < limit]


def _complete(plan: Plan, results: pd.DataFrame, seeds: dict[str, int]) -> bool:
    ended = set(results.loc[results["status"].isin(ENDED), "trial_key"]) if len(results) \
        else set()
    return all(t.key in ended for t in plan.trials if t.index < seeds[t.cell.name])


def _sides(row: ContrastRow) -> int:
    return 2 if row.alternative == "two-sided" else 1


def _sequential_row(row: ContrastRow, look: int, design: Design, p_seq: float,
                    tost_seq: float) -> ContrastRow:
    """The row with its primary p-value replaced by the sequential one and its CI by the
    repeated CI of this look."""
    pr = row.primary
    ma, mb = row.unit_moments
    se = math.sqrt(ma.var_of_mean + mb.var_of_mean) if ma.n > 1 and mb.n > 1 else math.nan
    lo, hi = repeated_ci(pr.delta, se, pr.df, look, design.fractions, design.alpha,
                         design.spending, row.alternative)
    seq = replace(pr, p=p_seq, ci_low=lo, ci_high=hi)
    if row.replicate_test is not None:
        row.replicate_test = seq
    else:
        row.test = seq
    row.tost_p = tost_seq
    row.look, row.looks = look + 1, len(design.looks)
    return row


def _lowest(best: dict[int, float], i: int, p: float) -> None:
    """Keep the smallest finite p-value of row ``i`` over the looks (NaN until there is one)."""
    if math.isfinite(p):
        best[i] = min(best.get(i, math.inf), p)


def _futile(row: ContrastRow, nominal_p: float, look: int, design: Design) -> bool:
    if design.futility is None or row.margin is not None or row.degenerate \
            or not math.isfinite(nominal_p) or look == len(design.looks) - 1:
        return False
    sides = _sides(row)
    one_sided = nominal_p / 2 if sides == 2 else nominal_p
    return conditional_power(one_sided, look, design.fractions, design.alpha, design.spending,
                             sides) < design.futility


def run_looks(plan: Plan, results: pd.DataFrame, design: Design, rows_of: RowsOf) -> State:
    """Replay the design over the finished trials: every complete look's tests and decisions,
    and the rows as of each contrast's deciding (or last analysed) look."""
    names = plan.cell_names()
    state = State(design, stop={n: None for n in names})
    best_p: dict[int, float] = {}
    best_tost: dict[int, float] = {}
    rows: list[ContrastRow] = []
    members: dict[str, list[int]] = {n: [] for n in names}
    for k in range(len(design.looks)):
        seeds = planned_seeds(state)  # look k's for open cells, the stopping look's else
        complete = _complete(plan, results, seeds)
        if not complete and k > 0:
            break
        fresh = rows_of(_within(plan, results, seeds))
        if not rows:
            for i, r in enumerate(fresh):
                members[r.a].append(i)
                members[r.b].append(i)
        nominal: dict[int, float] = {}
        for i, r in enumerate(fresh):
            if i in state.decided:
                continue
            nominal[i] = r.primary.p
            _lowest(best_p, i, repeated_p(r.primary.p, k, design.fractions, design.spending,
                                          _sides(r)))
            if r.margin is not None:
                _lowest(best_tost, i, repeated_p(r.tost_p, k, design.fractions,
                                                 design.spending, 1))
        rows = [rows[i] if i in state.decided else
                _sequential_row(r, k, design, best_p.get(i, math.nan),
                                best_tost.get(i, math.nan)) for i, r in enumerate(fresh)]
        decide(rows, design.alpha)
        if not complete:  # look 1 still running: shown, nothing decided
            break
        state.complete = k + 1
        for i in nominal:
            r = rows[i]
            if r.verdict in (BETTER, WORSE, EQUIVALENT):
                state.decided[i] = (k, r.verdict)
            elif _futile(r, nominal[i], k, design):
                state.decided[i] = (k, FUTILE)
        for n in names:
            if state.stop[n] is None and (k == len(design.looks) - 1 or (
                    members[n] and all(i in state.decided for i in members[n]))):
                state.stop[n] = k
        if all(v is not None for v in state.stop.values()):
            break
    state.rows = rows
    settle(state)
    return state


def settle(state: State) -> None:
    """Put back the decisions on the rows after a :func:`decide` over them (a decision is
    final: later looks of other contrasts only lower the Holm-adjusted p-values)."""
    for i, (_, verdict) in state.decided.items():
        row = state.rows[i]
        if verdict != FUTILE:
            row.verdict = verdict
        row.futile = verdict == FUTILE


def planned_seeds(state: State) -> dict[str, int]:
    """Seeds per encoder each cell gets by the design as it stands (its stopping look's, or
    the next look's while open)."""
    return {n: state.seeds_of(n) for n in state.stop}


def used_results(plan: Plan, results: pd.DataFrame, state: State) -> pd.DataFrame:
    """The trials the design uses: each cell's up to its stopping look (or the looks so far)."""
    return _within(plan, results, {n: state.seeds_of(n) if state.stop[n] is not None
                                   else state.design.looks[max(state.complete - 1, 0)]
                                   for n in state.stop})


def sequential_warnings(state: State) -> list[str]:
    """What a reader must know before the verdicts: a look still running."""
    d = state.design
    open_cells = [n for n, k in state.stop.items() if k is None]
    if not open_cells:
        return []
    k = state.complete
    if k == 0:
        return [f"sequential seeds: look 1 of {len(d.looks)} ({d.looks[0]} seeds per encoder) "
                "is not complete: nothing is decided yet, and the verdicts use the trials so "
                "far"]
    return [f"sequential seeds: look {k + 1} of {len(d.looks)} ({d.looks[k]} seeds per "
            f"encoder) is not complete for {len(open_cells)} cell(s): the verdicts are those "
            f"of look {k}"]
