"""Plugins without forking: installed packages add methods, dataset formats and protocol kinds
through entry points, found when a suite is loaded.

In a plugin's ``pyproject.toml``::

    [project.entry-points."bench.methods"]
    my_method = "my_pkg.method:MyMethod"          # a bench.ssl.methods.base.Method subclass
    [project.entry-points."bench.readers"]
    my_format = "my_pkg.reader:READER"             # a bench.data.readers.Reader (or its read fn)
    [project.entry-points."bench.protocols"]
    my_kind = "my_pkg.protocol:MyKindSpec"         # a ProtocolBase subclass, kind "my_kind"

The entry point's name is what a suite writes (``method: my_method``, ``format: my_format``,
``kind: my_kind``). Methods are only named here: a method's module (and torch) is imported when a
suite uses it, and its source file enters the keys of its stages, as for any user method.
Readers and protocol models are imported here, so their modules should not import torch (a
protocol's runner is a ``module:Class`` string, imported when a trial runs); a protocol kind's
model and runner source files enter the keys of its cells. A plugin that cannot be loaded, or
that would replace one of bench's own names, stops the suite with exit 2 naming the entry point
and its distribution.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import typing
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from bench.config.protocols import PROTOCOL_KINDS, ProtocolBase
from bench.config.schema import register_protocol
from bench.data.readers import READERS, Reader
from bench.errors import BenchError
from bench.ssl.methods import METHODS, PLUGIN_METHODS

GROUPS = ("bench.methods", "bench.readers", "bench.protocols")
"""The entry-point groups bench reads."""
_BUILTIN_KINDS = frozenset(PROTOCOL_KINDS)


@dataclass(frozen=True)
class Plugin:
    """One entry point bench found: its group, name, target and the distribution it came
    from."""

    group: str
    name: str
    value: str
    distribution: str

    def __str__(self) -> str:
        return f"{self.group}: {self.name} = {self.value} ({self.distribution})"


class PluginError(BenchError):
    """An entry point that cannot be used."""


def _plugin(group: str, ep: EntryPoint) -> Plugin:
    dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "unknown distribution"
    return Plugin(group, ep.name, ep.value, dist)


def _fail(p: Plugin, why: str) -> PluginError:
    return PluginError(f"plugin {p.name!r} ({p.group}, from {p.distribution}): {why}; fix or "
                       "uninstall that package")


def _load(p: Plugin, ep: EntryPoint) -> object:
    try:
        return ep.load()
    except Exception as exc:  # an import error in someone else's package: say whose
        raise _fail(p, f"cannot load {p.value!r}: {type(exc).__name__}: {exc}") from exc


@cache
def load_plugins() -> tuple[Plugin, ...]:
    """Find and register every installed plugin (once per process)."""
    found: list[Plugin] = []
    for ep in entry_points(group="bench.methods"):
        p = _plugin("bench.methods", ep)
        if ep.name in METHODS:
            raise _fail(p, f"{ep.name!r} is one of bench's own methods")
        if ":" not in ep.value:
            raise _fail(p, f"{p.value!r} is not a 'module:Class' path")
        PLUGIN_METHODS[ep.name] = ep.value
        found.append(p)
    for ep in entry_points(group="bench.readers"):
        p = _plugin("bench.readers", ep)
        if ep.name in READERS or ep.name == "synthetic":
            raise _fail(p, f"{ep.name!r} is one of bench's own formats")
        obj = _load(p, ep)
        if not isinstance(obj, Reader):
            if not callable(obj):
                raise _fail(p, f"{p.value!r} is neither a Reader nor a read function")
            obj = Reader(obj)
        READERS[ep.name] = obj
        found.append(p)
    for ep in entry_points(group="bench.protocols"):
        p = _plugin("bench.protocols", ep)
        if ep.name in _BUILTIN_KINDS:
            raise _fail(p, f"{ep.name!r} is one of bench's own protocol kinds")
        spec = _load(p, ep)
        if not (isinstance(spec, type) and issubclass(spec, ProtocolBase)):
            raise _fail(p, f"{p.value!r} is not a subclass of ProtocolBase")
        kinds = typing.get_args(spec.model_fields["kind"].annotation)
        if kinds != (ep.name,):
            raise _fail(p, f"its model's kind is {kinds!r}, not Literal[{ep.name!r}]")
        register_protocol(spec)
        found.append(p)
    return tuple(found)


def protocol_source(kind: str) -> str:
    """sha256 of a plugin protocol kind's model and runner source files ('' for bench's own
    kinds): editing either changes the keys of its cells. The runner's file is located without
    importing it."""
    if kind in _BUILTIN_KINDS:
        return ""
    spec = PROTOCOL_KINDS[kind]
    files = [inspect.getsourcefile(spec)]
    runner = spec.runner
    if isinstance(runner, str):
        found = importlib.util.find_spec(runner.partition(":")[0])
        files.append(found.origin if found is not None else None)
    else:
        files.append(inspect.getsourcefile(runner))
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).read_bytes() if f else b"")
    return h.hexdigest()
