"""A calibrated cost model: seconds per unit kind, fitted to the units a store finished (or to
``bench calibrate``'s measurement of this machine), its predictions for what a plan still has
to do, and its error on finished suites.

A *unit* is what the executor runs at once: a stage, a cell's lr search, or the trials of one
cell that trained together (a HeadBank, or one trial). Each unit has a kind (``stage``,
``search``, ``trials:<protocol kind>``), a cost in forward-pass equivalents of the encoder's
shared work (:mod:`bench.plan.cost`: the stage's epochs and views, a trial's training and test
passes, counted once for a bank) and a number of trials. Per kind the model is

    seconds = a + b · cost + c · trials

(a: per-unit overhead — loading an encoder, decoding data, logging; b: seconds per forward pass
of one image, the inverse throughput; c: per-trial work a bank does not share — its head's
steps, metrics, predictions), fitted by non-negative least squares (``scipy.optimize.nnls``) to
the finished units of the kind. A kind with fewer than three finished units, or none, uses the
pooled seconds per cost of all kinds (b only), or the ``bench calibrate`` rates of the device
class. Finished units are found from the store: a stage or search run, or the trial runs of a
cell that started at the same moment (a bank's runs are claimed together).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.plan.cost import stage_cost, trial_cost
from bench.plan.keys import search_key
from bench.plan.nodes import Cell, Plan
from bench.track import FINISHED, RunRecord

BANKED = ("linear_probe", "knn")
"""Protocol kinds whose trials of one cell usually train together (one unit per cell)."""


@dataclass
class Unit:
    """One unit of work: its kind, cost, trials and (finished) seconds."""

    kind: str
    key: str
    cost: float
    trials: int = 0
    seconds: float | None = None
    keys: list[str] = field(default_factory=list)
    """The stage or trial keys the unit does (pending units)."""


@dataclass
class Rates:
    """(a, b, c) per unit kind, and the pooled seconds per cost for kinds without their own."""

    per_kind: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    pooled: float | None = None
    source: str = ""

    def seconds(self, unit: Unit) -> float | None:
        """Predicted seconds of a unit (None: nothing to predict from)."""
        abc = self.per_kind.get(unit.kind)
        if abc is not None:
            a, b, c = abc
            return a + b * unit.cost + c * unit.trials
        return self.pooled * unit.cost if self.pooled else None

    def to_json(self) -> str:
        return json.dumps({"per_kind": self.per_kind, "pooled": self.pooled,
                           "source": self.source}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Rates:
        raw = json.loads(text)
        return cls({k: tuple(v) for k, v in raw["per_kind"].items()}, raw.get("pooled"),
                   raw.get("source", ""))


def trial_kind(cell: Cell) -> str:
    """The unit kind of a cell's trials: ``trials:<protocol kind>``."""
    return f"trials:{cell.spec.kind}"


def finished_units(plan: Plan, best: Mapping[str, RunRecord]) -> list[Unit]:
    """The plan's units the store holds finished, with their recorded seconds."""
    units = []
    for s in plan.stages:
        r = best.get(s.key)
        if r is not None and r.status == FINISHED and r.end_time:
            units.append(Unit("stage", s.key, stage_cost(plan, s), 0,
                              (r.end_time - r.start_time) / 1000))
    for c in plan.cells:
        r = best.get(search_key(c))
        if r is not None and r.status == FINISHED and r.end_time:
            units.append(Unit("search", search_key(c), trial_cost(plan, c), 0,
                              (r.end_time - r.start_time) / 1000))
    by_cell: dict[str, list[RunRecord]] = defaultdict(list)
    cell_of: dict[str, Cell] = {}
    for t in plan.trials:
        r = best.get(t.key)
        if r is not None and r.status == FINISHED and r.end_time:
            by_cell[t.cell.key].append(r)
            cell_of[t.cell.key] = t.cell
    for cell_key, runs in by_cell.items():
        cell = cell_of[cell_key]
        for bank in _banks(runs):
            start, end = bank[0].start_time, max(r.end_time or 0 for r in bank)
            units.append(Unit(trial_kind(cell), bank[0].key, trial_cost(plan, cell), len(bank),
                              (end - start) / 1000))
    return units


def _banks(runs: list[RunRecord]) -> list[list[RunRecord]]:
    """A cell's trial runs grouped into the units that ran them: runs claimed together all
    start before the first of them ends."""
    out: list[list[RunRecord]] = []
    first_end = -1
    for r in sorted(runs, key=lambda r: r.start_time):
        if out and r.start_time < first_end:
            out[-1].append(r)
            first_end = min(first_end, r.end_time or first_end)
        else:
            out.append([r])
            first_end = r.end_time or r.start_time
    return out


def pending_units(plan: Plan, done: set[str], skip: Iterable[str] = ()) -> list[Unit]:
    """The units still to run (keys in ``done`` or ``skip`` are not): every unfinished stage,
    and per cell its unfinished trials, as one bank for the kinds in :data:`BANKED`, else one
    unit per trial."""
    skip = set(skip) | done
    units = [Unit("stage", s.key, stage_cost(plan, s), keys=[s.key]) for s in plan.stages
             if s.key not in skip]
    for c in plan.cells:
        todo = [t for t in plan.trials_of(c) if t.key not in skip]
        if not todo:
            continue
        cost = trial_cost(plan, c)
        if c.spec.kind in BANKED:
            units.append(Unit(trial_kind(c), todo[0].key, cost, len(todo),
                              keys=[t.key for t in todo]))
        else:
            units += [Unit(trial_kind(c), t.key, cost, 1, keys=[t.key]) for t in todo]
    return units


def key_seconds(plan: Plan, rates: Rates, done: set[str]) -> dict[str, float]:
    """Predicted seconds of every unfinished stage and trial key (a bank's prediction shared
    out over its trials); keys without a rate are left out."""
    out: dict[str, float] = {}
    for u in pending_units(plan, done):
        sec = rates.seconds(u)
        if sec is not None:
            out.update({k: sec / len(u.keys) for k in u.keys})
    return out


def fit(units: list[Unit], source: str = "") -> Rates:
    """Rates of the finished ``units`` (see the module docstring)."""
    from scipy.optimize import nnls

    done = [u for u in units if u.seconds is not None and u.cost > 0]
    total_cost = sum(u.cost for u in done)
    pooled = sum(u.seconds for u in done) / total_cost if total_cost > 0 else None
    rates = Rates(pooled=pooled, source=source)
    by_kind: dict[str, list[Unit]] = defaultdict(list)
    for u in done:
        by_kind[u.kind].append(u)
    for kind, us in by_kind.items():
        if len(us) < 3:
            continue
        x = np.array([[1.0, u.cost, u.trials] for u in us])
        y = np.array([u.seconds for u in us], dtype=float)
        scale = np.maximum(np.abs(x).max(axis=0), 1e-12)  # nnls on columns of like size
        coef, _ = nnls(x / scale, y)
        a, b, c = (coef / scale).tolist()
        rates.per_kind[kind] = (a, b, c)
    return rates


def _fold(key: str) -> int:
    return hashlib.sha256(key.encode()).digest()[0] % 2


@dataclass(frozen=True)
class KindError:
    """A unit kind's measured and predicted seconds on a finished suite."""

    kind: str
    units: int
    measured: float
    predicted: float

    @property
    def error(self) -> float:
        """(predicted − measured) / measured."""
        return (self.predicted - self.measured) / self.measured if self.measured > 0 \
            else math.nan


def cross_errors(units: list[Unit]) -> list[KindError]:
    """The model's error per kind, out of sample: the units split in two halves by key, each
    half predicted by the rates fitted to the other (so a kind's error is what a plan made
    before those units ran would have had)."""
    done = [u for u in units if u.seconds is not None]
    halves = [[u for u in done if _fold(u.key) == f] for f in (0, 1)]
    rates = [fit(halves[1]), fit(halves[0])]
    measured: dict[str, float] = defaultdict(float)
    predicted: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for f in (0, 1):
        for u in halves[f]:
            p = rates[f].seconds(u)
            if p is None:
                continue
            measured[u.kind] += u.seconds or 0.0
            predicted[u.kind] += p
            count[u.kind] += 1
    return [KindError(k, count[k], measured[k], predicted[k]) for k in sorted(measured)]


def calibration_path(state_dir: Path, device_class: str) -> Path:
    """Where ``bench calibrate`` keeps the rates of a device class."""
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in device_class)
    return state_dir / "calibration" / f"{slug}.json"
