"""Which unit runs next: a pure function of the plan and a snapshot of the store (no torch).

Units are stages, cell-level lr searches and trials (a cell's trials that its protocol can train
together form one unit). The scheduler walks the DAG in plan order and returns the first unit
that is ready (its stage's encoder exists, its cell's lr is known) and held by nobody, and says
whether other work is still held by other workers (so that this one waits rather than stops).

Give-up rules: a stage whose parent failed during this run, and every trial below a failed stage
or a failed cell-level lr search, is given up (reported failed once, not run); a unit that failed
before this run started is run again, one that failed during it is not retried until the next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bench.plan import Cell, Plan, StageNode, Trial
from bench.plan.keys import search_key
from bench.track import FAILED, FINISHED, RUNNING, RunRecord, Tag


@dataclass
class RunSummary:
    """Counts of what a ``bench run`` did."""

    stages_run: int = 0
    stages_skipped: int = 0
    trials_run: int = 0
    trials_skipped: int = 0
    trials_stopped: int = 0
    """Sequential seeds: trials not run because their cell's contrasts were decided."""
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed


def needs_cell_search(cell: Cell) -> bool:
    """Whether the cell's lr is searched once for the cell (before its trials)."""
    s = cell.spec.lr_search
    return s.method != "fixed" and s.per == "cell"


@dataclass
class Snapshot:
    """What the store says, as the scheduler needs it: the best run of every key."""

    best: dict[str, RunRecord]
    since_ms: int
    """When this ``bench run`` started (ms): failures after it are this run's."""

    def done(self, key: str) -> bool:
        r = self.best.get(key)
        return r is not None and r.status == FINISHED

    def busy(self, key: str) -> bool:
        r = self.best.get(key)
        return r is not None and r.status == RUNNING

    def failed_now(self, key: str) -> bool:
        """Failed during this run (by this or another worker): not retried until the next run."""
        r = self.best.get(key)
        return (r is not None and r.status == FAILED
                and (r.end_time or 0) >= self.since_ms)

    def cell_lr(self, cell: Cell) -> float | None:
        """The cell-level lr when it is known (its search run, or an older cell run's)."""
        rec = self.best.get(search_key(cell))
        if rec is not None and rec.status == FINISHED and "cell_max_lr" in rec.metrics:
            return float(rec.metrics["cell_max_lr"])
        legacy = self.best.get(cell.key)
        if legacy is not None and "cell_max_lr" in legacy.metrics:
            return float(legacy.metrics["cell_max_lr"])
        return None


@dataclass
class Unit:
    """One claimable piece of work: a stage, a cell's lr search, or trials of one cell."""

    kind: str  # "stage" | "search" | "trials"
    stage: StageNode | None = None
    cell: Cell | None = None
    trials: list[Trial] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.stage is not None:
            return f"stage {self.stage.display}"
        return f"cell {self.cell.display if self.cell else '?'}"


def needed_stages(plan: Plan, pending: list[Trial], done: set[str]) -> set[str]:
    """Unfinished stages that a pending trial depends on (directly or through parents)."""
    needed: set[str] = set()
    by_key = {s.key: s for s in plan.stages}
    for t in pending:
        key = t.cell.stage_key
        while key in by_key and key not in done:
            needed.add(key)
            key = by_key[key].parent_key
    return needed


class Scheduler:
    """Picks units for one worker; remembers what it gave up. With sequential seeds
    (``allows``), a trial of a later look is ready once its cell is still open after the
    looks before it (:mod:`bench.execute.sequential`).

    ``gave_up(label, reason)`` is called once per unit given up (the executor reports it).
    """

    def __init__(self, plan: Plan, pending: list[Trial], needed: set[str],
                 gave_up: Callable[[str, str], None],
                 allows: Callable[[Snapshot, Trial], bool] | None = None):
        self.plan = plan
        self.pending = pending
        self.needed = needed
        self.allows = allows
        """Sequential seeds: whether a trial's look is open (None: every trial is)."""
        self.given_up: set[str] = set()
        self._gave_up = gave_up

    def _give_up(self, key: str, label: str, reason: str) -> None:
        if key not in self.given_up:
            self.given_up.add(key)
            self._gave_up(label, reason)

    def next_unit(self, snap: Snapshot) -> tuple[Unit | None, bool]:
        """The first ready, unheld unit in DAG order, and whether work is held elsewhere."""
        waiting = False
        failed_stages: set[str] = set()
        for node in self.plan.stages:
            if node.key not in self.needed or snap.done(node.key):
                continue
            if snap.failed_now(node.key) or node.parent_key in failed_stages:
                failed_stages.add(node.key)
                if not snap.failed_now(node.key):
                    self._give_up(node.key, f"stage {node.display}", "its parent stage failed")
                self.given_up.add(node.key)
                continue
            if snap.busy(node.key) or (node.parent_key in self.needed
                                       and not snap.done(node.parent_key)):
                waiting = True
                continue
            return Unit("stage", stage=node), waiting
        by_cell: dict[str, list[Trial]] = {}
        for t in self.pending:
            if not snap.done(t.key) and t.key not in self.given_up \
                    and (self.allows is None or self.allows(snap, t)):
                by_cell.setdefault(t.cell.key, []).append(t)
        for cell in self.plan.cells:
            trials = by_cell.get(cell.key)
            if not trials:
                continue
            if cell.stage_key is not None and not snap.done(cell.stage_key):
                if (cell.stage_key in self.needed and cell.stage_key not in failed_stages) \
                        or snap.busy(cell.stage_key):
                    waiting = True
                else:
                    reason = ("stage failed" if cell.stage_key in failed_stages
                              else "its stage has not finished")
                    for t in trials:
                        self._give_up(t.key, f"{cell.display} seed={t.seed}", reason)
                continue
            if needs_cell_search(cell) and snap.cell_lr(cell) is None:
                skey = search_key(cell)
                if snap.failed_now(skey):
                    reason = snap.best[skey].tags.get(Tag.FAILURE, "lr search failed")
                    for t in trials:
                        self._give_up(t.key, f"{cell.display} seed={t.seed}",
                                      f"lr search failed: {reason}")
                elif snap.busy(skey):
                    waiting = True
                else:
                    return Unit("search", cell=cell), waiting
                continue
            todo = []
            for t in trials:
                if snap.busy(t.key):
                    waiting = True
                elif snap.failed_now(t.key):
                    self.given_up.add(t.key)
                else:
                    todo.append(t)
            if todo:
                return Unit("trials", cell=cell, trials=todo), waiting
        return None, waiting
