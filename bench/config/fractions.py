"""``label_fractions``: one protocol per fraction, with the grid, contrasts and controls that
name it repeated at every fraction.

A protocol ``lp`` with ``label_fractions: [0.01, 0.1, 1.0]`` becomes ``lp@0.01``, ``lp@0.1`` and
``lp@1``, each with its ``label_fraction`` set (``lp@1`` has the key ``lp`` had). A contrast
between cells of expanded protocols is declared once and tested at every fraction, in its own
family (so Holm runs across the fractions); its label gains `` @ <fraction>``. Both of its cells
must use protocols with the same fractions. A control that names such a contrast is judged at
every fraction. Runs after schema validation, before the names are checked.
"""

from __future__ import annotations

from bench.config.errors import Problem
from bench.config.schema import ContrastSpec, ControlSpec, Suite


def fraction_name(protocol: str, fraction: float) -> str:
    """``lp`` at 0.1 → ``lp@0.1``."""
    return f"{protocol}@{fraction:g}"


def _protocol_of(cell: str | None) -> str | None:
    return cell.rpartition("/")[2] if cell and "/" in cell else None


def _at(cell: str, fraction: float) -> str:
    head, _, proto = cell.rpartition("/")
    return f"{head}/{fraction_name(proto, fraction)}"


def expand_label_fractions(suite: Suite) -> tuple[Suite, list[Problem]]:
    """The suite with every ``label_fractions`` protocol expanded (unchanged without one)."""
    fractions = {n: sorted(p.label_fractions) for n, p in suite.protocols.items()
                 if p.label_fractions}
    if not fractions:
        return suite, []
    problems: list[Problem] = []
    protocols = {}
    for name, p in suite.protocols.items():
        for f in fractions.get(name, [None]):
            if f is None:
                protocols[name] = p
            else:
                protocols[fraction_name(name, f)] = p.model_copy(
                    update={"label_fractions": None, "label_fraction": float(f)})
    grid = suite.grid.model_copy(update={
        "protocols": [fraction_name(n, f) if n in fractions else n
                      for n in suite.grid.protocols for f in fractions.get(n, [None])],
        "include": [r.model_copy(update={"protocol": fraction_name(r.protocol, f)})
                    if r.protocol in fractions else r
                    for r in suite.grid.include for f in fractions.get(r.protocol, [None])]})
    contrasts: list[ContrastSpec] = []
    renamed: dict[str, list[tuple[float, str]]] = {}
    for i, c in enumerate(suite.contrasts):
        cells = [x for x in (c.a, c.b, c.vs) if x]
        protos = {_protocol_of(x) for x in cells} & set(fractions)
        if not protos:
            contrasts.append(c)
            continue
        sets = {tuple(fractions.get(_protocol_of(x), [])) for x in cells}
        if len(sets) != 1:
            problems.append(Problem(("contrasts", i), "its cells' protocols have different "
                                    "label_fractions: a contrast compares cells at one fraction"))
            continue
        label = c.label or (f"{c.a} vs {c.b}" if c.a and c.b else "")
        for f in sets.pop():
            update = {k: _at(getattr(c, k), f) for k in ("a", "b", "vs") if getattr(c, k)}
            if label:
                update["label"] = f"{label} @ {f:g}"
                renamed.setdefault(label, []).append((f, update["label"]))
            contrasts.append(c.model_copy(update=update))
    controls: list[ControlSpec] = []
    for ctl in suite.controls:
        for _, label in renamed.get(ctl.contrast, [(None, ctl.contrast)]):
            controls.append(ctl.model_copy(update={"contrast": label}))
    return suite.model_copy(update={"protocols": protocols, "grid": grid, "contrasts": contrasts,
                                    "controls": controls}), problems
