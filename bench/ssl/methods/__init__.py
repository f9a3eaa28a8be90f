"""Pre-training methods, one file each, found through one torch-free registry.

:data:`METHODS` maps a name to ``(module:Class, Params)``: the class is imported only when a stage
trains, the pydantic ``Params`` model validates a suite's ``stages.<name>.params`` (and gives the
``smoke`` profile its settings, :meth:`MethodParams.smoke`) without torch. A new built-in method is
one file plus one line here.

A suite names a registered method (``barlow_twins``), a plugin's method (its entry point's
name, :data:`PLUGIN_METHODS`), an importable class
(``mypackage.my_method:MyMethod``), or a class in a Python file (``methods/my_method.py:MyMethod``,
relative to the working directory) that subclasses :class:`bench.ssl.methods.base.Method`.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

from bench.ssl.methods.params import (
    BarlowTwinsParams,
    BYOLParams,
    MethodParams,
    SimCLRParams,
    SupervisedParams,
    VICRegParams,
)


class MethodEntry(NamedTuple):
    """A registered method: where its class is, and its parameter model."""

    target: str
    params: type[MethodParams]


METHODS: dict[str, MethodEntry] = {
    "barlow_twins": MethodEntry("bench.ssl.methods.barlow_twins:BarlowTwins", BarlowTwinsParams),
    "supervised": MethodEntry("bench.ssl.methods.supervised:Supervised", SupervisedParams),
    "vicreg": MethodEntry("bench.ssl.methods.vicreg:VICReg", VICRegParams),
    "simclr": MethodEntry("bench.ssl.methods.simclr:SimCLR", SimCLRParams),
    "byol": MethodEntry("bench.ssl.methods.byol:BYOL", BYOLParams),
}


PLUGIN_METHODS: dict[str, str] = {}
"""Methods of installed plugins (entry point ``bench.methods``): name → ``module:Class``,
imported when a suite uses one (filled by :func:`bench.plan.plugins.load_plugins`)."""


def method_params(name: str) -> type[MethodParams]:
    """The parameter model of a registered method, or of a user class (imported)."""
    entry = METHODS.get(name)
    return entry.params if entry is not None else resolve_method(name).Params


class MethodNotFound(LookupError):
    """A method name that is neither registered nor an importable ``module:Class``."""


def resolve_method(name: str) -> type:
    """The method class for a registered name or a ``package.module:ClassName`` path."""
    from bench.ssl.methods.base import Method

    entry = METHODS.get(name)
    target = entry.target if entry is not None else PLUGIN_METHODS.get(name, name)
    if ":" not in target:
        raise MethodNotFound(f"unknown method {name!r}")
    module_name, _, cls_name = target.rpartition(":")
    try:
        module = (_load_file(module_name) if module_name.endswith(".py")
                  else importlib.import_module(module_name))
    except (ImportError, FileNotFoundError) as exc:
        raise MethodNotFound(f"cannot import {module_name!r} for method {name!r}: {exc}") from exc
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise MethodNotFound(f"{target!r} is not a subclass of bench.ssl.methods.base.Method")
    return cls


def _load_file(path: str):
    """Import a method file by path (once; later calls reuse the module)."""
    import importlib.util
    import sys
    from pathlib import Path

    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    name = f"bench_user_method_{abs(hash(str(file)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
