"""Cross-reference checks of a schema-valid suite: every name it defines for itself (datasets
and their parts, inits, stages, protocols, cells, metrics) must exist where it is used.

Names defined by registries above the config layer (architectures, methods, their parameters)
are checked by the plan's resolver (:mod:`bench.plan.resolve`)."""

from __future__ import annotations

from bench.config.errors import Problem, did_you_mean
from bench.config.names import cell_name, expand_cells
from bench.config.schema import METRICS, DatasetSpec, Suite


def dataset_parts(spec: DatasetSpec) -> set[str]:
    """Names of the parts a dataset's split defines."""
    s = spec.split
    parts = set(s.fractions or {}) | set(s.counts or {}) | set(s.merge)
    if s.rest:
        parts.add(s.rest)
    return parts


def _check_ref(suite: Suite, ref: str, loc: tuple, out: list[Problem]) -> None:
    ds, _, part = ref.partition(":")
    if ds not in suite.datasets:
        out.append(Problem(loc, f"unknown dataset {ds!r}{did_you_mean(ds, suite.datasets)}"))
        return
    split = suite.datasets[ds].split
    if split.column is not None:
        return  # parts come from the data itself; the plan checks them once it is read
    parts = dataset_parts(suite.datasets[ds])
    if part and part not in parts:
        out.append(Problem(loc, f"dataset {ds!r} has no part {part!r}{did_you_mean(part, parts)}"
                                f"; its parts: {sorted(parts)}"))


def _known(kind: str, name: str, names: dict, loc: tuple, out: list[Problem]) -> bool:
    if name in names:
        return True
    out.append(Problem(loc, f"unknown {kind} {name!r}{did_you_mean(name, names)}"))
    return False


def check_references(suite: Suite) -> list[Problem]:
    """Every problem of names and references, with the field path where it occurs."""
    out: list[Problem] = []
    for name, stage in suite.stages.items():
        for i, ref in enumerate(stage.data):
            _check_ref(suite, ref, ("stages", name, "data", i), out)
    for name, proto in suite.protocols.items():
        _check_ref(suite, proto.train, ("protocols", name, "train"), out)
        _check_ref(suite, proto.test, ("protocols", name, "test"), out)
        if proto.train == proto.test:
            out.append(Problem(("protocols", name, "test"),
                               f"the test part {proto.test!r} is also the training part"))
    g = suite.grid
    for i, init in enumerate(g.inits):
        _known("init", init, suite.inits, ("grid", "inits", i), out)
    for i, chain in enumerate(g.chains):
        for j, st in enumerate(chain):
            _known("stage", st, suite.stages, ("grid", "chains", i, j), out)
    for i, proto in enumerate(g.protocols):
        _known("protocol", proto, suite.protocols, ("grid", "protocols", i), out)
    for i, c in enumerate(g.include):
        _known("init", c.init, suite.inits, ("grid", "include", i, "init"), out)
        _known("protocol", c.protocol, suite.protocols, ("grid", "include", i, "protocol"), out)
        for j, st in enumerate(c.chain):
            _known("stage", st, suite.stages, ("grid", "include", i, "chain", j), out)
    if out:
        return out
    cells = [cell_name(*c) for c in expand_cells(suite)]
    if not cells:
        out.append(Problem(("grid",), "the grid expands to no cell"))
    for i, c in enumerate(suite.contrasts):
        names = [("a", c.a), ("b", c.b), ("vs", c.vs)]
        for side, name in names:
            if name is not None and name not in cells:
                out.append(Problem(("contrasts", i, side),
                                   f"unknown cell {name!r}{did_you_mean(name, cells)}"))
        if c.a is not None and c.a == c.b:
            out.append(Problem(("contrasts", i), "a contrast compares a cell with itself"))
        if c.metric is not None and c.metric not in METRICS:
            out.append(Problem(("contrasts", i, "metric"),
                               f"unknown metric {c.metric!r}{did_you_mean(c.metric, METRICS)}"))
    for i, m in enumerate(suite.report.metrics):
        if m not in METRICS:
            out.append(Problem(("report", "metrics", i),
                               f"unknown metric {m!r}{did_you_mean(m, METRICS)}"))
    for m in suite.report.margins:
        if m not in METRICS:
            out.append(Problem(("report", "margins", m),
                               f"unknown metric {m!r}{did_you_mean(m, METRICS)}"))
    for name, pub in suite.published.items():
        if name not in cells:
            out.append(Problem(("published", name),
                               f"unknown cell {name!r}{did_you_mean(name, cells)}"))
        for m in pub.values:
            if m not in METRICS:
                out.append(Problem(("published", name, m),
                                   f"unknown metric {m!r}{did_you_mean(m, METRICS)}"))
    return out

