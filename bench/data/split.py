"""Seeded, stratified, optionally grouped splits of a record table into named parts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.config.schema import SplitSpec
from bench.data.errors import DataError, offenders


class SplitError(DataError):
    """A split cannot be drawn as asked (e.g. a class has fewer images than its counts need)."""


def assign_parts(records: pd.DataFrame, spec: SplitSpec, where: str = "split") -> pd.Series:
    """A ``part`` name per record (index-aligned); records no part takes get ``''``.

    Args:
        records: table with columns ``id``, ``label``, ``group`` (and ``spec.column``).
        spec: the split.
        where: prefix of error messages.

    Draws are per class: the class's images (or groups, with ``grouped``; a group's class is
    its first record's label) are ordered by ``numpy.random.default_rng([seed, class_index])``
    (or by id with ``order: sorted``) and cut into consecutive runs of the requested sizes.
    Adding a class does not reshuffle the others. With ``grouped`` a group is never split, so
    counts are met as closely as whole groups allow.
    """
    part = pd.Series("", index=records.index, dtype=object)
    pool = records
    if spec.column is not None:
        if spec.column not in records.columns:
            raise SplitError(f"{where}: the records have no column {spec.column!r}; "
                             f"they have {sorted(records.columns)}")
        part[:] = records[spec.column].astype(str)
        if spec.within is not None:
            pool = records[part == spec.within]
            if pool.empty:
                raise SplitError(f"{where}: no record has {spec.column} = {spec.within!r}")
            part[pool.index] = ""
    if spec.fractions is not None or spec.counts is not None:
        _draw(pool, spec, part, where)
    for new, olds in spec.merge.items():
        unknown = [o for o in olds if o not in set(part)]
        if unknown:
            raise SplitError(f"{where}: merge names part(s) {unknown} that hold no image")
        part[part.isin(olds)] = new
    return part


def _draw(pool: pd.DataFrame, spec: SplitSpec, part: pd.Series, where: str) -> None:
    classes = sorted(pool["label"].unique())
    if spec.counts is not None:
        named = {c for per in spec.counts.values() for c in per}
        unknown = sorted(named - set(classes))
        if unknown:
            raise SplitError(offenders("classes in counts that the data lacks", unknown, where))
    unit = "group" if spec.grouped else "id"
    problems: list[str] = []
    for ci, cls in enumerate(classes):
        rows = pool[pool["label"] == cls]
        if spec.grouped:
            first = pool.drop_duplicates("group").set_index("group")["label"]
            units = np.array(sorted(g for g in rows["group"].unique() if first[g] == cls))
            sizes = pool.groupby("group").size()
        else:
            units = np.array(sorted(rows["id"]))
            sizes = None
        if spec.order == "random":
            units = units[np.random.default_rng([spec.seed, ci]).permutation(len(units))]
        n_images = int(sizes[units].sum()) if sizes is not None else len(units)
        cursor = 0
        for name, target in _targets(spec, str(cls), n_images, problems):
            got = 0
            start = cursor
            while cursor < len(units) and got < target:
                got += int(sizes[units[cursor]]) if sizes is not None else 1
                cursor += 1
            _mark(pool, unit, units[start:cursor], name, part)
        if spec.rest is not None:
            _mark(pool, unit, units[cursor:], spec.rest, part)
    if problems:
        raise SplitError(offenders("classes too small for the split", problems, where))


def _mark(pool: pd.DataFrame, unit: str, chosen: np.ndarray, name: str, part: pd.Series) -> None:
    if len(chosen):
        part[pool.index[pool[unit].isin(set(chosen.tolist()))]] = name


def _targets(spec: SplitSpec, cls: str, n: int, problems: list[str]) -> list[tuple[str, int]]:
    if spec.fractions is not None:
        names = list(spec.fractions)
        conv = (lambda x: int(np.floor(x + 1e-9))) if spec.rounding == "floor" else round
        sizes = [int(conv(spec.fractions[p] * n)) for p in names]
        if spec.rest is None:  # the last part takes what rounding leaves
            sizes[-1] = n - sum(sizes[:-1])
        return list(zip(names, sizes, strict=True))
    assert spec.counts is not None
    out = [(p, int(spec.counts[p].get(cls, 0))) for p in spec.counts]
    need = sum(s for _, s in out)
    if need > n:
        problems.append(f"{cls} has {n} images, counts ask for {need}")
    return out
