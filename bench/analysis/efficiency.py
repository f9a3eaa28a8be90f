"""Label-efficiency curves: each encoder's metric at every label fraction of a protocol
expanded by ``label_fractions`` (:mod:`bench.config.fractions`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.analysis.cells import CellRow
from bench.config.names import parse_ref
from bench.data.subsets import part_subset
from bench.plan import Plan
from bench.stats import Summary


@dataclass
class EfficiencyPoint:
    """One cell of the curve: its fraction, the labelled images it trains on (the subset of
    the first trial seed; with groups the other seeds' subsets differ by a few images) and the
    metric's summary over its units (replicate means when its pre-training was replicated,
    else trials)."""

    fraction: float
    images: int
    cell: str
    summary: Summary


@dataclass
class EfficiencyCurve:
    """One protocol's fractions on one metric: encoder → its points, by fraction."""

    protocol: str
    metric: str
    encoders: dict[str, list[EfficiencyPoint]] = field(default_factory=dict)


def base_protocol(name: str, fraction: float) -> str | None:
    """``lp`` for the expanded protocol ``lp@0.1`` (None for a protocol not expanded)."""
    base, at, tail = name.rpartition("@")
    if not at:
        return None
    try:
        return base if float(tail) == fraction else None
    except ValueError:
        return None


def efficiency_curves(plan: Plan, cells: list[CellRow], metrics: list[str]
                      ) -> list[EfficiencyCurve]:
    """A curve per (expanded protocol, metric) with at least two fractions."""
    specs = plan.suite.protocols
    sizes: dict[tuple[str, float], int] = {}
    groups: dict[str, list[CellRow]] = {}
    for c in cells:
        spec = specs[c.protocol]
        base = base_protocol(c.protocol, spec.label_fraction)
        if base is not None:
            groups.setdefault(base, []).append(c)
    seed = next((t.seeds["subset"] for t in plan.trials), 0)
    out = []
    for base, members in groups.items():
        if len({specs[c.protocol].label_fraction for c in members}) < 2:
            continue
        for m in metrics:
            curve = EfficiencyCurve(base, m)
            for c in members:
                spec = specs[c.protocol]
                key = (spec.train, spec.label_fraction)
                if key not in sizes:
                    ds_name, part = parse_ref(spec.train)
                    sizes[key] = len(part_subset(plan.datasets[ds_name], part,
                                                 spec.label_fraction, seed))
                summary = c.unit_metrics.get(m) or c.metrics.get(m)
                if summary is None:
                    continue
                curve.encoders.setdefault(c.encoder, []).append(
                    EfficiencyPoint(spec.label_fraction, sizes[key], c.cell, summary))
            for points in curve.encoders.values():
                points.sort(key=lambda p: p.fraction)
            out.append(curve)
    return out
