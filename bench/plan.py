"""The plan: grid expansion into cells and trials, content-addressed keys, and the DAG.

Keys (sha256, 16 hex digits shown) are functions of content, never of names or order:
- init  = H(arch, weights fingerprint)  (sha256 of the file, or of (arch, seed) when random);
- stage = H(parent key, the stage's config without cosmetic fields, data names and its
  replicate count, the hash of the data it trains on, its seed). Replicate r of a stage with
  ``replicates: k`` trains with its own seed (:func:`replicate_seed`; replicate 0 keeps the
  stage's seed, so its key is the key of the unreplicated stage and adding replicates to a
  finished suite reuses its runs); every replicate of a parent gets k replicates of the child;
- cell  = H(encoder key, the protocol's config without cosmetic fields, train/test manifest hashes);
- trial = H(cell key, trial seed, the seed sources that vary, the base seed).
So editing a description changes no key, renaming a stage changes no key, and the same stage used
by two cells (or two suites) is trained once.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bench.config.loader import LoadedSuite
from bench.config.schema import DATA_REF_RE, ProtocolSpec, StageSpec, Suite
from bench.errors import BenchError
from bench.seeds import replicate_seed, trial_seeds


# --------------------------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------------------------
def key_view(value: Any) -> Any:
    """JSON-able view of a config without its cosmetic fields (recursively)."""
    if isinstance(value, BaseModel):
        out = {}
        for name, info in type(value).model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and extra.get("cosmetic"):
                continue
            out[name] = key_view(getattr(value, name))
        return out
    if isinstance(value, dict):
        return {str(k): key_view(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [key_view(v) for v in value]
    return value


def content_key(kind: str, *parts: Any) -> str:
    """sha256 of a canonical JSON encoding of ``(kind, *parts)``."""
    text = json.dumps([kind, *parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# grid expansion
# --------------------------------------------------------------------------------------------
def cell_name(init: str, chain: Iterable[str], protocol: str) -> str:
    """``init+stage1+stage2/protocol``."""
    return "+".join([init, *chain]) + f"/{protocol}"


def chain_label(init: str, chain: Iterable[str]) -> str:
    """``init+stage1+stage2`` (an encoder's name)."""
    return "+".join([init, *chain])


def expand_cells(suite: Suite) -> list[tuple[str, tuple[str, ...], str]]:
    """(init, chain, protocol) of every cell, in grid order, then ``include``; minus ``exclude``.

    Duplicates are dropped (first occurrence kept).
    """
    g = suite.grid
    out: list[tuple[str, tuple[str, ...], str]] = []
    for init in g.inits:
        for chain in g.chains:
            for proto in g.protocols:
                out.append((init, tuple(chain), proto))
    out += [(c.init, tuple(c.chain), c.protocol) for c in g.include]
    seen: set[str] = set()
    cells = []
    for init, chain, proto in out:
        name = cell_name(init, chain, proto)
        if name in seen or any(fnmatch.fnmatchcase(name, pat) for pat in g.exclude):
            continue
        seen.add(name)
        cells.append((init, chain, proto))
    return cells


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``'ds:part'`` → ('ds', 'part'); ``'ds'`` → ('ds', None)."""
    m = DATA_REF_RE.match(ref)
    if not m:
        raise ValueError(f"bad data reference {ref!r}")
    return m.group(1), m.group(2)


# --------------------------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------------------------
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


def _placeholder(name: str, spec: Any) -> Any:
    """An empty dataset standing in for one that cannot be read (lenient plans)."""
    import pandas as pd

    from bench.data.dataset import MANIFEST_COLUMNS, Dataset

    records = pd.DataFrame(columns=[*MANIFEST_COLUMNS, "path", "source", "index"])
    return Dataset(name=name, spec=spec, records=records, classes=[])


def _check_parts(suite: Suite, datasets: dict[str, Any], cells_spec: list) -> None:
    """Every part a used protocol or stage names must hold images."""
    from bench.data.errors import DataError

    refs: list[tuple[str, str]] = []
    for _init, chain, proto in cells_spec:
        p = suite.protocols[proto]
        refs += [(f"protocols.{proto}.train", p.train), (f"protocols.{proto}.test", p.test)]
        refs += [(f"stages.{st}.data", r) for st in chain for r in suite.stages[st].data]
    problems = []
    for where, ref in dict.fromkeys(refs):
        ds, part = parse_ref(ref)
        if part is not None and part not in datasets[ds].parts:
            problems.append(f"{where}: part {ref!r} holds no image (the parts of {ds!r} are "
                            f"{datasets[ds].parts})")
    if problems:
        raise DataError("\n".join(problems))


def method_digest(method: str) -> str:
    """sha256 of a user method's source file ('' for bench's own methods): editing the file
    changes the keys of the stages that use it."""
    import inspect

    from bench.ssl.methods import METHODS, resolve_method

    if method in METHODS:
        return ""
    source = inspect.getsourcefile(resolve_method(method))
    return hashlib.sha256(Path(source).read_bytes()).hexdigest() if source else ""


def data_hash(datasets: dict[str, Any], refs: list[str], repeat: list[int] | None) -> str:
    """Hash of a union of dataset parts with repeat factors."""
    reps = repeat or [1] * len(refs)
    parts = []
    for ref, r in zip(refs, reps, strict=True):
        ds, part = parse_ref(ref)
        parts.append([datasets[ds].manifest_hash(part), r])
    return content_key("data", parts)


def build_plan(loaded: LoadedSuite, base_dir: Path | None = None, check_files: bool = True,
               lenient: bool = False) -> Plan:
    """Expand a validated suite into its plan (reads dataset records; decodes no pixels).

    Relative paths (weights, data) are relative to ``base_dir`` (default: the working directory).
    With ``lenient``, a dataset or weights file that cannot be read is listed in
    ``plan.missing`` (with where to get it) instead of raising; the plan's shape is still
    right, but its keys are provisional.
    """
    from bench.data.dataset import build_dataset
    from bench.models.files import init_fingerprint

    suite = loaded.suite
    base = base_dir
    cells_spec = expand_cells(suite)
    used: set[str] = set()
    for _, chain, proto in cells_spec:  # only the datasets the cells use are read
        p = suite.protocols[proto]
        used |= {parse_ref(r)[0] for r in (p.train, p.test)}
        used |= {parse_ref(r)[0] for st in chain for r in suite.stages[st].data}
    missing: list[str] = []
    datasets = {}
    for name in suite.datasets:
        if name not in used:
            continue
        try:
            datasets[name] = build_dataset(name, suite.datasets[name], check_files)
        except BenchError as exc:
            if not lenient:
                raise
            from bench.sources import DATASET_SOURCES

            spec = suite.datasets[name]
            missing.append(f"{str(exc).splitlines()[0]}\n    get it: "
                           f"{DATASET_SOURCES.get(spec.format, '')}")
            datasets[name] = _placeholder(name, spec)
    if not missing:
        _check_parts(suite, datasets, cells_spec)

    inits: dict[str, InitNode] = {}
    for name in dict.fromkeys(init for init, _, _ in cells_spec):
        spec = suite.inits[name]
        try:
            fp = init_fingerprint(spec.arch, spec.weights, spec.seed, base)
        except BenchError as exc:
            if not lenient:
                raise
            from bench.sources import weights_hint

            hint = (weights_hint(spec.weights.removeprefix("file:"))
                    if spec.weights.startswith("file:") else "")
            missing.append(f"init {name!r}: {exc}" + (f"\n    get it: {hint}" if hint else ""))
            fp = f"missing:{spec.weights}"
        inits[name] = InitNode(name=name, key=content_key("init", spec.arch, fp), fingerprint=fp)

    stages: dict[str, StageNode] = {}
    encoders_of: dict[tuple[str, tuple[str, ...]], list[tuple[tuple[int, ...], str]]] = {}
    for init, chain, _ in cells_spec:
        leaves: list[tuple[tuple[int, ...], str]] = [((), inits[init].key)]
        for i, stage_name in enumerate(chain):
            spec = suite.stages[stage_name]
            dh = data_hash(datasets, spec.data, spec.repeat)
            source = method_digest(spec.method)
            grown = []
            for path, parent in leaves:
                for r in range(spec.replicates):
                    rspec = spec if r == 0 else spec.model_copy(
                        update={"seed": replicate_seed(spec.seed, r)})
                    view = {k: v for k, v in key_view(rspec).items()
                            if k not in ("data", "repeat", "replicates")}
                    if source:  # user methods only: bench's own keep their keys
                        view["method_source"] = source
                    key = content_key("stage", parent, view, dh)
                    sub = (*path, r) if spec.replicates > 1 else path
                    if key not in stages:
                        stages[key] = StageNode(
                            key=key, label=chain_label(init, chain[: i + 1]), name=stage_name,
                            init=init, chain=chain[: i + 1], parent_key=parent, spec=rspec,
                            data_hash=dh, replicate=replicate_label(sub),
                        )
                    grown.append((sub, key))
            leaves = grown
        encoders_of[(init, chain)] = leaves

    cells: list[Cell] = []
    for init, chain, proto in cells_spec:
        spec = suite.protocols[proto]
        tr_ds, tr_part = parse_ref(spec.train)
        te_ds, te_part = parse_ref(spec.test)
        for path, enc in encoders_of[(init, chain)]:
            key = content_key(
                "cell", enc, key_view(spec),
                datasets[tr_ds].manifest_hash(tr_part), datasets[te_ds].manifest_hash(te_part),
            )
            cells.append(Cell(
                name=cell_name(init, chain, proto), key=key, init=init, chain=chain,
                protocol=proto, spec=spec, encoder_key=enc, stage_key=enc if chain else None,
                replicate=replicate_label(path),
            ))

    plan = Plan(loaded=loaded, datasets=datasets, inits=inits, stages=list(stages.values()),
                cells=cells, missing=missing)
    sd = suite.seeds
    vary = sorted(sd.vary)
    for cell in cells:
        for i in range(sd.count):
            seed = sd.base + i
            key = content_key("trial", cell.key, seed, vary, sd.base)
            plan.trials.append(Trial(cell=cell, index=i, seed=seed, key=key,
                                     seeds=trial_seeds(seed, sd.base, vary)))
    return plan
