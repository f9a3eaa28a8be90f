"""Pre-training methods, one file each, found through a plain registry (name → 'module:Class').

A suite names a registered method (``barlow_twins``) or any importable class
(``mypackage.my_method:MyMethod``) that subclasses :class:`bench.ssl.methods.base.Method`.
"""

from __future__ import annotations

import importlib

METHODS: dict[str, str] = {
    "barlow_twins": "bench.ssl.methods.barlow_twins:BarlowTwins",
    "supervised": "bench.ssl.methods.supervised:Supervised",
    "vicreg": "bench.ssl.methods.vicreg:VICReg",
    "simclr": "bench.ssl.methods.simclr:SimCLR",
    "byol": "bench.ssl.methods.byol:BYOL",
}


class MethodNotFound(LookupError):
    """A method name that is neither registered nor an importable ``module:Class``."""


def resolve_method(name: str) -> type:
    """The method class for a registered name or a ``package.module:ClassName`` path."""
    from bench.ssl.methods.base import Method

    target = METHODS.get(name, name)
    if ":" not in target:
        raise MethodNotFound(f"unknown method {name!r}")
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MethodNotFound(f"cannot import {module_name!r} for method {name!r}: {exc}") from exc
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise MethodNotFound(f"{target!r} is not a subclass of bench.ssl.methods.base.Method")
    return cls
