"""Evaluation protocols: one runner file per kind (``fine_tune``, ``linear_probe``).

A kind's settings model (:data:`bench.config.protocols.PROTOCOL_KINDS`, selected by ``kind``)
names its runner (``runner = "bench.protocols.<kind>:Class"``); the runner trains and tests the
trials of one cell on one encoder. A new kind is one runner file here plus its model and one
registry line in ``bench/config/protocols.py``.
"""

from __future__ import annotations

import importlib
from functools import cache

from bench.config.protocols import PROTOCOL_KINDS
from bench.protocols.base import Protocol


def protocol_for(kind: str) -> Protocol:
    """The runner of a protocol kind."""
    spec = PROTOCOL_KINDS.get(kind)
    if spec is None:
        raise KeyError(f"unknown protocol kind {kind!r}; known: {sorted(PROTOCOL_KINDS)}")
    return _instance(spec.runner)


@cache
def _instance(target: str | type[Protocol]) -> Protocol:
    if isinstance(target, str):
        module, _, name = target.partition(":")
        target = getattr(importlib.import_module(module), name)
    return target()


__all__ = ["Protocol", "protocol_for"]
