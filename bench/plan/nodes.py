"""The plan's nodes: inits, stage replicates, cells, trials, and the plan that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.config.loader import LoadedSuite
from bench.config.schema import ProtocolSpec, StageSpec, Suite


@dataclass
class InitNode:
    """An initialisation (the root of chains)."""

    name: str
    key: str
    fingerprint: str


def replicate_label(path: tuple[int, ...]) -> str:
    """``(1,)`` → ``'1'``; ``(0, 2)`` → ``'0.2'`` (indices of the replicated stages of a chain,
    outermost first); ``()`` → ``''``."""
    return ".".join(str(r) for r in path)


@dataclass
class StageNode:
    """One pre-training stage (one replicate of it) applied to one parent encoder."""

    key: str
    label: str
    name: str
    init: str
    chain: tuple[str, ...]
    parent_key: str
    spec: StageSpec
    data_hash: str
    replicate: str = ""
    """Replicate path (:func:`replicate_label`; '' when nothing up to it is replicated)."""

    @property
    def display(self) -> str:
        """The label with its replicate, e.g. ``tiny+SSL [r1]``."""
        return f"{self.label} [r{self.replicate}]" if self.replicate else self.label


@dataclass
class Cell:
    """One (init chain, protocol) combination on one encoder: a cell whose chain has
    replicated stages is one ``Cell`` per pre-training replicate (same name, own key)."""

    name: str
    key: str
    init: str
    chain: tuple[str, ...]
    protocol: str
    spec: ProtocolSpec
    encoder_key: str
    stage_key: str | None
    replicate: str = ""
    """Replicate path of the encoder ('' when no stage of the chain is replicated)."""

    @property
    def display(self) -> str:
        """The name with its replicate, e.g. ``tiny+SSL/fine_tune [r1]``."""
        return f"{self.name} [r{self.replicate}]" if self.replicate else self.name

    @property
    def unit(self) -> str:
        """The pre-training replicate that is the unit of inference: the index of the
        outermost replicated stage ('' when none is replicated)."""
        return self.replicate.split(".")[0]


@dataclass
class Trial:
    """One (cell, seed)."""

    cell: Cell
    index: int
    seed: int
    key: str
    seeds: dict[str, int]


@dataclass
class Plan:
    """Everything a suite asks for, keyed by content, in dependency order."""

    loaded: LoadedSuite
    datasets: dict[str, Any]
    inits: dict[str, InitNode]
    stages: list[StageNode]
    cells: list[Cell]
    trials: list[Trial] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Inputs that could not be read (only with ``lenient``): keys are then provisional."""
    unread: list[str] = field(default_factory=list)
    """Datasets among them (placeholders without records): their counts and costs are unknown."""

    @property
    def suite(self) -> Suite:
        return self.loaded.suite

    def stage(self, key: str) -> StageNode:
        """The stage node with this key."""
        return next(s for s in self.stages if s.key == key)

    def trials_of(self, cell: Cell) -> list[Trial]:
        """The trials of one cell (one replicate of it), by seed."""
        return [t for t in self.trials if t.cell.key == cell.key]

    def cell_names(self) -> list[str]:
        """Cell names in grid order, each once (replicates share a name)."""
        return list(dict.fromkeys(c.name for c in self.cells))

    def replicates_of(self, name: str) -> list[Cell]:
        """The cells (one per pre-training replicate) of one cell name."""
        return [c for c in self.cells if c.name == name]

    def stage_keys_of(self, name: str) -> set[str]:
        """Keys of every stage node behind a cell name's encoders (all replicates)."""
        parent = {s.key: s.parent_key for s in self.stages}
        out: set[str] = set()
        for c in self.replicates_of(name):
            key = c.stage_key
            while key in parent:
                out.add(key)
                key = parent[key]
        return out

    def dependencies(self) -> dict[str, list[str]]:
        """The DAG as node key → keys it depends on (stages → parent stage; trials → stage)."""
        deps: dict[str, list[str]] = {}
        stage_keys = {s.key for s in self.stages}
        for s in self.stages:
            deps[s.key] = [s.parent_key] if s.parent_key in stage_keys else []
        for t in self.trials:
            deps[t.key] = [t.cell.stage_key] if t.cell.stage_key else []
        return deps
