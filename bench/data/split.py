"""Seeded, stratified, optionally grouped splits of a record table into named parts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.config.schema import SplitSpec
from bench.errors import BenchError


class SplitError(BenchError, ValueError):
    """A split cannot be drawn as asked (e.g. a class has fewer images than its counts need)."""


def assign_parts(records: pd.DataFrame, spec: SplitSpec) -> pd.Series:
    """Return a ``part`` label per record (index-aligned); records left unassigned get ``''``.

    Args:
        records: table with columns ``id``, ``label`` and ``group``.
        spec: fractions or per-class counts, seed and grouping.

    Draws are per class with ``numpy.random.default_rng([seed, class_index])`` so adding a class
    does not reshuffle the others. With ``grouped``, whole groups are drawn (a group's class is its
    first record's label) and counts are met greedily without splitting a group.
    """
    part = pd.Series("", index=records.index, dtype=object)
    classes = sorted(records["label"].unique())
    unit = "group" if spec.grouped else "id"
    problems: list[str] = []
    for ci, cls in enumerate(classes):
        rows = records[records["label"] == cls]
        units = rows[unit].drop_duplicates().to_numpy()
        rng = np.random.default_rng([spec.seed, ci])
        units = units[rng.permutation(len(units))]
        sizes = rows.groupby(unit).size() if spec.grouped else None
        plan = _targets(spec, str(cls), len(rows), problems)
        cursor = 0
        taken: dict[str, list[object]] = {}
        for name, target in plan:
            got: list[object] = []
            n = 0
            while cursor < len(units) and n < target:
                u = units[cursor]
                got.append(u)
                n += int(sizes[u]) if sizes is not None else 1
                cursor += 1
            taken[name] = got
        if spec.rest is not None:
            taken.setdefault(spec.rest, []).extend(units[cursor:].tolist())
        for name, got in taken.items():
            part[rows.index[rows[unit].isin(got)]] = name
    if problems:
        shown = "; ".join(problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        raise SplitError(f"split cannot be drawn: {shown}{more}")
    return part


def _targets(spec: SplitSpec, cls: str, n: int, problems: list[str]) -> list[tuple[str, int]]:
    if spec.fractions is not None:
        names = list(spec.fractions)
        sizes = [round(spec.fractions[p] * n) for p in names[:-1]]
        sizes.append(n - sum(sizes))
        return list(zip(names, sizes, strict=True))
    assert spec.counts is not None
    out = [(p, int(spec.counts[p].get(cls, 0))) for p in spec.counts]
    unknown = {c for p in spec.counts for c in spec.counts[p]}
    need = sum(s for _, s in out)
    if need > n:
        problems.append(f"class {cls!r} has {n} images but the counts ask for {need}")
    del unknown
    return out
