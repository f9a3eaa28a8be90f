"""Evaluation protocols, one file per kind, found through a plain registry (kind → module:Class).

A protocol's settings are its model in :mod:`bench.config.protocols` (selected by ``kind``); its
runner here trains and tests the trials of one cell on one encoder. A new kind is one runner file
plus one line here (and its settings model, with one line in ``PROTOCOL_KINDS``).
"""

from __future__ import annotations

import importlib
from functools import cache

from bench.protocols.base import Protocol

PROTOCOLS: dict[str, str | type[Protocol]] = {
    "fine_tune": "bench.protocols.fine_tune:FineTune",
    "linear_probe": "bench.protocols.linear_probe:LinearProbe",
}


def protocol_for(kind: str) -> Protocol:
    """The runner of a protocol kind."""
    target = PROTOCOLS.get(kind)
    if target is None:
        raise KeyError(f"no runner for protocol kind {kind!r}; known: {sorted(PROTOCOLS)}")
    return _instance(target)


@cache
def _instance(target: str | type[Protocol]) -> Protocol:
    if isinstance(target, str):
        module, _, name = target.partition(":")
        target = getattr(importlib.import_module(module), name)
    return target()


__all__ = ["PROTOCOLS", "Protocol", "protocol_for"]
