"""The names a suite uses for its parts and cells, and how they are spelled.

Pure functions of the validated :class:`~bench.config.schema.Suite` (no registry, no data):
data references (``dataset:part``), cell names (``init+stage1+stage2/protocol``) and the grid's
expansion into (init, chain, protocol) triples. The plan, the data layer and the report all
speak these names, so they live here, below all of them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Any, Protocol


class _WithGrid(Protocol):
    """Anything with a ``grid`` (a :class:`~bench.config.schema.Suite`)."""

    grid: Any

_NAME = r"[A-Za-z][A-Za-z0-9_\-]*"
NAME_RE = re.compile(rf"^{_NAME}$")
"""A plain name: a letter, then letters, digits, '_' or '-'."""
DATA_REF_RE = re.compile(rf"^({_NAME})(?::({_NAME}))?$")
"""``dataset`` or ``dataset:part``."""


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``'ds:part'`` → ('ds', 'part'); ``'ds'`` → ('ds', None)."""
    m = DATA_REF_RE.match(ref)
    if not m:
        raise ValueError(f"bad data reference {ref!r}")
    return m.group(1), m.group(2)


def cell_name(init: str, chain: Iterable[str], protocol: str) -> str:
    """``init+stage1+stage2/protocol``."""
    return "+".join([init, *chain]) + f"/{protocol}"


def chain_label(init: str, chain: Iterable[str]) -> str:
    """``init+stage1+stage2`` (an encoder's name)."""
    return "+".join([init, *chain])


def expand_cells(suite: _WithGrid) -> list[tuple[str, tuple[str, ...], str]]:
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
