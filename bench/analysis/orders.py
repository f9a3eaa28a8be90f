"""Partial orders: what the tested contrasts establish between the cells of one protocol.

Only tested contrasts make relations, one per pair of cells (a pair tested in several
families is one relation: established if any of its tests established it). The order is not
closed under transitivity: a ≻ b and b ≻ c do not make a ≻ c unless a vs c was tested; a
Hasse edge a → c is left out only when a ≻ c was itself established and a path a ≻ … ≻ c of
established relations already shows it. Where such a path exists but a vs c was tested and
did *not* come out a ≻ c, the pair is listed as a conflict so that no reader infers it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from bench.analysis.verdicts import BETTER, INCONCLUSIVE, ContrastRow
from bench.config.protocols import a_better_if_above


@dataclass
class PartialOrder:
    """The relations the contrasts establish between the cells of one protocol on one metric.

    Attributes:
        better: (winner, loser) pairs, once each.
        equivalent: pairs shown equivalent within their declared margin.
        inconclusive: tested pairs with no established relation.
        opposite: (apparent winner, declared winner) of one-sided contrasts whose data point
            against the declared direction (flags, not verdicts).
        conflicts: (a, c) pairs that a path of ``better`` relations would suggest but whose
            own test did not establish a ≻ c.
    """

    metric: str
    protocol: str
    nodes: list[str]
    better: list[tuple[str, str]]
    equivalent: list[tuple[str, str]]
    inconclusive: list[tuple[str, str]]
    opposite: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[tuple[str, str]] = field(default_factory=list)

    def _reach(self) -> dict[str, set[str]]:
        succ: dict[str, set[str]] = defaultdict(set)
        for a, b in self.better:
            succ[a].add(b)
        out: dict[str, set[str]] = {}
        for start in self.nodes:
            seen, stack = set(), list(succ[start])
            while stack:
                x = stack.pop()
                if x not in seen:
                    seen.add(x)
                    stack.extend(succ[x])
            out[start] = seen
        return out

    def hasse(self) -> list[tuple[str, str]]:
        """Covering edges: an established a ≻ b is dropped only when a path a ≻ c ≻ … ≻ b of
        established relations shows it."""
        succ: dict[str, set[str]] = defaultdict(set)
        for a, b in self.better:
            succ[a].add(b)
        reach = self._reach()
        return [(a, b) for a, b in self.better
                if not any(b in reach.get(c, set()) for c in succ[a] if c != b)]


def _key(a: str, b: str) -> frozenset[str]:
    return frozenset((a, b))


def partial_orders(rows: list[ContrastRow], metrics: list[str], protocols: list[str],
                   nodes_of: dict[str, list[str]]) -> list[PartialOrder]:
    """One partial order per (metric, protocol) that has a contrast between its cells."""
    out = []
    for m in metrics:
        for proto in protocols:
            nodes = nodes_of[proto]
            rel = [r for r in rows if r.metric == m and r.a in nodes and r.b in nodes]
            if not rel:
                continue
            better: dict[frozenset[str], tuple[str, str]] = {}
            equiv: dict[frozenset[str], tuple[str, str]] = {}
            opposite: dict[frozenset[str], tuple[str, str]] = {}
            tested: dict[frozenset[str], tuple[str, str]] = {}
            for r in rel:
                k = _key(r.a, r.b)
                tested.setdefault(k, (r.a, r.b))
                if r.significant:
                    better.setdefault(k, (r.a, r.b) if r.verdict == BETTER else (r.b, r.a))
                elif r.equivalent:
                    equiv.setdefault(k, (r.a, r.b))
                if r.opposite and r.verdict == INCONCLUSIVE:
                    a_declared = (r.alternative == "greater") == a_better_if_above(r.metric)
                    declared_winner = r.a if a_declared else r.b
                    other = r.b if declared_winner == r.a else r.a
                    opposite.setdefault(k, (other, declared_winner))
            inconclusive = [p for k, p in tested.items() if k not in better and k not in equiv]
            order = PartialOrder(m, proto, nodes, list(better.values()), list(equiv.values()),
                                 inconclusive, list(opposite.values()))
            reach = order._reach()
            for k, (x, z) in tested.items():
                for u, v in ((x, z), (z, x)):
                    if v in reach.get(u, set()) and better.get(k) != (u, v):
                        order.conflicts.append((u, v))
            out.append(order)
    return out
