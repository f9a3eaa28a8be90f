"""Expanding a validated suite into its plan: datasets read, keys computed, the DAG built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.config.loader import LoadedSuite
from bench.config.names import cell_name, chain_label, expand_cells, parse_ref
from bench.config.schema import Suite
from bench.errors import BenchError
from bench.plan.keys import content_key, data_hash, key_view, method_digest
from bench.plan.nodes import Cell, InitNode, Plan, StageNode, Trial, replicate_label
from bench.plan.plugins import protocol_source
from bench.seeds import acting_sources, path_seed, trial_seeds


def _placeholder(name: str, spec: Any) -> Any:
    """An empty dataset standing in for one that cannot be read (lenient plans)."""
    import pandas as pd

    from bench.data.dataset import MANIFEST_COLUMNS, Dataset

    records = pd.DataFrame(columns=[*MANIFEST_COLUMNS, "path", "source", "index"])
    return Dataset(name=name, spec=spec, records=records, classes=[])


def _with_hints(exc: BenchError, loaded: LoadedSuite, where: tuple[str, str], source: str | None,
                prefix: str = "") -> str:
    """The message of an input that cannot be read; when it is *missing*, with the environment
    variables of the suite that choose its location (``set HAM10000_DIR (datasets.ham.root)``)
    and where to get it (:mod:`bench.sources`)."""
    from bench.data.errors import MissingData
    from bench.models.files import MissingWeights

    text = prefix + str(exc)
    if not isinstance(exc, MissingData | MissingWeights):
        return text
    if env := loaded.env_hint(*where):
        text += f"\n    or point the suite at it: {env}"
    return text + (f"\n    get it: {source}" if source else "")


def _check_parts(suite: Suite, datasets: dict[str, Any], cells_spec: list) -> None:
    """Every part a used protocol or stage names must hold images, and a protocol's training
    part an image of every class of its dataset."""
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
    for where, ref in dict.fromkeys((w, r) for w, r in refs if w.endswith(".train")):
        ds, part = parse_ref(ref)
        if part is None or part not in datasets[ds].parts:
            continue
        present = set(datasets[ds].part(part)["label"])
        absent = [c for c in datasets[ds].classes if c not in present]
        if absent:
            problems.append(f"{where}: {len(absent)} class(es) of {ds!r} have no image in "
                            f"{ref!r}: {absent} (the classifier would never see them; drop them "
                            "with keep_classes, merge them with class_map, or change the split)")
    if problems:
        raise DataError("\n".join(problems))


def batch_problems(plan: Plan, cells: list[Cell], stages: list[StageNode]) -> list[str]:
    """Of the cells and stages about to train: a batch larger than the data it is drawn from
    (each epoch is then one smaller batch: the batch size the suite states is not the one that
    trains). Said before training, not when a plan is only read."""
    suite, datasets = plan.suite, plan.datasets

    def size(ref: str) -> int:
        ds, part = parse_ref(ref)
        return len(datasets[ds].part(part))

    out = []
    for proto in dict.fromkeys(c.protocol for c in cells):
        spec = suite.protocols[proto]
        n = size(spec.train)
        if spec.drop_last and n < spec.batch_size:
            out.append(f"protocols.{proto}.batch_size: {spec.batch_size} is more than the {n} "
                       f"images of {spec.train}: each epoch is one batch of {n}")
    for st in dict.fromkeys(s.name for s in stages):
        spec = suite.stages[st]
        n = sum(size(r) * k for r, k in zip(spec.data, spec.repeat or [1] * len(spec.data),
                                            strict=True))
        if n < spec.batch_size:
            out.append(f"stages.{st}.batch_size: {spec.batch_size} is more than the {n} images "
                       f"it trains on: each epoch is one batch of {n}")
    return out


LR_RANGE = (1e-7, 10.0)
"""Learning rates outside this range do not train a network (a typo in an exponent, most often):
warned about before training."""


def lr_problems(plan: Plan, cells: list[Cell], stages: list[StageNode]) -> list[str]:
    """Of the cells and stages about to train: a fixed or warm-up lr outside :data:`LR_RANGE`."""
    lo, hi = LR_RANGE
    fields = [(f"protocols.{p}", plan.suite.protocols[p]) for p in
              dict.fromkeys(c.protocol for c in cells)]
    fields += [(f"stages.{st}", plan.suite.stages[st]) for st in dict.fromkeys(s.name for s in stages)]
    out = []
    for where, spec in fields:
        values = [("warmup_lr", spec.warmup_lr)]
        if spec.lr_search.method == "fixed":
            values.append(("lr_search.lr", spec.lr_search.lr))
        out += [f"{where}.{name}: {value:g} is far outside the learning rates that train "
                f"({lo:g} … {hi:g}); check its exponent"
                for name, value in values if not lo <= value <= hi]
    return out


def _check_metric_names(datasets: dict[str, Any]) -> None:
    """Two classes of a dataset may not share a metric name (``f1_<class>`` and kin)."""
    from bench.data.errors import DataError
    from bench.track import metric_name

    for name, ds in datasets.items():
        seen: dict[str, str] = {}
        for c in ds.classes:
            other = seen.setdefault(metric_name(c), c)
            if other != c:
                raise DataError(f"dataset {name!r}: classes {other!r} and {c!r} would log the "
                                f"same metric names ({metric_name(c)!r}); rename one with "
                                "class_map")


def build_plan(loaded: LoadedSuite, base_dir: Path | None = None, check_files: bool = True,
               lenient: bool = False) -> Plan:
    """Expand a validated suite into its plan (reads dataset records; decodes no pixels).

    Relative paths (weights, data) are relative to ``base_dir`` (default: the working directory).
    A dataset or weights file that cannot be read is an error naming it (a missing one also
    where to get it and the suite's environment variable that locates it), all of them in one
    message. With ``lenient`` they are listed in ``plan.missing`` instead of raising; the plan's
    shape is still right, but its keys are provisional.
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
    unread: list[str] = []
    errors: list[BenchError] = []
    datasets = {}
    for name in suite.datasets:
        if name not in used:
            continue
        try:
            datasets[name] = build_dataset(name, suite.datasets[name], check_files)
        except BenchError as exc:
            from bench.sources import DATASET_SOURCES

            spec = suite.datasets[name]
            text = _with_hints(exc, loaded, ("datasets", name), DATASET_SOURCES.get(spec.format))
            errors.append(type(exc)(text))
            missing.append(text)
            unread.append(name)
            datasets[name] = _placeholder(name, spec)
    if not missing:
        _check_parts(suite, datasets, cells_spec)
        _check_metric_names(datasets)

    inits: dict[str, InitNode] = {}
    for name in dict.fromkeys(init for init, _, _ in cells_spec):
        spec = suite.inits[name]
        try:
            fp = init_fingerprint(spec.arch, spec.weights, spec.seed, base)
        except BenchError as exc:
            from bench.sources import weights_hint

            hint = (weights_hint(spec.weights.removeprefix("file:"))
                    if spec.weights.startswith("file:") else None)
            text = _with_hints(exc, loaded, ("inits", name), hint, f"init {name!r}: ")
            errors.append(type(exc)(text))
            missing.append(text)
            fp = f"missing:{spec.weights}"
        inits[name] = InitNode(name=name, key=content_key("init", spec.arch, fp), fingerprint=fp)
    if errors and not lenient:  # every input that cannot be read, in one message
        raise errors[0] if len(errors) == 1 else BenchError(
            f"{len(errors)} inputs cannot be read:\n" + "\n".join(f"  - {m}" for m in missing))

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
                    seed = path_seed(spec.seed, path, r)
                    rspec = spec if seed == spec.seed else spec.model_copy(
                        update={"seed": seed})
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
        view = key_view(spec)
        runner_source = protocol_source(spec.kind)
        if runner_source:  # plugin kinds only: bench's own keep their keys
            view["protocol_source"] = runner_source
        if spec.lr_search.method == "optuna" and spec.lr_search.per == "trial":
            view["trial_study_seed"] = "lr_search"  # per-trial studies are seeded by the trial
        for path, enc in encoders_of[(init, chain)]:
            key = content_key(
                "cell", enc, view,
                datasets[tr_ds].manifest_hash(tr_part), datasets[te_ds].manifest_hash(te_part),
            )
            cells.append(Cell(
                name=cell_name(init, chain, proto), key=key, init=init, chain=chain,
                protocol=proto, spec=spec, encoder_key=enc, stage_key=enc if chain else None,
                replicate=replicate_label(path),
            ))

    plan = Plan(loaded=loaded, datasets=datasets, inits=inits, stages=list(stages.values()),
                cells=cells, missing=missing, unread=unread)
    sd = suite.seeds
    for cell in cells:
        vary = acting_sources(sd.vary, cell.spec.label_fraction)
        for i in range(sd.count):
            seed = sd.base + i
            key = content_key("trial", cell.key, seed, vary, sd.base)
            plan.trials.append(Trial(cell=cell, index=i, seed=seed, key=key,
                                     seeds=trial_seeds(seed, sd.base, vary)))
    return plan
