"""Sequential seeds in the executor: which trials may run now.

A thin view of :func:`bench.analysis.sequential.run_looks` over the scheduler's snapshot: a trial
may run when its seed index is below the seeds its cell gets now (the next look's while the cell
is open, its stopping look's once decided). The state is recomputed from the finished trials
whenever they change, so every worker (or SLURM task) of a run, and every resumed run, takes the
same decisions; nothing about the design is stored.
"""

from __future__ import annotations

from bench.analysis import arms_of, contrast_rows
from bench.analysis.sequential import Design, State, design_of, run_looks
from bench.plan import Plan, Trial
from bench.results import results_of
from bench.track import RunRecord


class SequentialGate:
    """The design's state as of a snapshot of the store (cached on the ended trials)."""

    def __init__(self, plan: Plan, design: Design):
        self.plan, self.design = plan, design
        self.metrics = plan.suite.report.metrics
        self._keys = {t.key for t in plan.trials}
        self._seen: frozenset | None = None
        self._best: dict[str, RunRecord] | None = None
        self._state: State | None = None

    @classmethod
    def of(cls, plan: Plan) -> SequentialGate | None:
        """The gate of a suite with sequential seeds, else None."""
        design = design_of(plan)
        return cls(plan, design) if design is not None else None

    def state(self, best: dict[str, RunRecord]) -> State:
        """The design's state given the best run of each key."""
        if best is self._best and self._state is not None:  # the same snapshot: no change
            return self._state
        self._best = best
        seen = frozenset((k, r.status) for k, r in best.items() if k in self._keys)
        if self._state is None or seen != self._seen:
            plan = self.plan
            results = results_of(plan, best)
            self._state = run_looks(plan, results, self.design, lambda res: contrast_rows(
                plan, self.metrics, arms_of(plan, res)))
            self._seen = seen
        return self._state

    def allows(self, best: dict[str, RunRecord], trial: Trial) -> bool:
        """Whether ``trial`` belongs to a look its cell gets now."""
        return self.state(best).allows(trial)

    def stopped(self, best: dict[str, RunRecord], trials: list[Trial]) -> list[Trial]:
        """The trials that will never run: their cell stopped at an earlier look."""
        state = self.state(best)
        return [t for t in trials if state.stopped(t)]
