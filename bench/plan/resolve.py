"""The registries' names, checked where a suite is loaded: dataset formats, architectures,
methods and their parameters.

The schema (``bench.config``) knows no registry; the loader asks this resolver, which reads the
torch-free registries of the layers below the plan (``bench.models.archs``,
``bench.ssl.methods``). A user method (``module:Class`` or ``file.py:Class``) is imported here, so
its ``Params`` are validated and its file is located before anything trains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bench.config.errors import Problem, did_you_mean
from bench.config.loader import LoadedSuite
from bench.config.loader import load_suite as _load_suite
from bench.config.schema import Suite
from bench.data.readers import READERS, format_problems
from bench.models.archs import ARCHS
from bench.plan.plugins import load_plugins
from bench.ssl.methods import METHODS, PLUGIN_METHODS, MethodNotFound, method_params


class RegistryResolver:
    """:class:`bench.config.loader.Resolver` over bench's registries."""

    def check(self, suite: Suite) -> list[Problem]:
        """Unknown architectures and methods, and method parameters their model refuses."""
        out: list[Problem] = []
        for name, ds in suite.datasets.items():
            for fld, message in format_problems(ds):
                hint = did_you_mean(ds.format, ("synthetic", *READERS)) if fld == "format" \
                    else ""
                out.append(Problem(("datasets", name, fld if fld == "format" else "format"),
                                   message + hint))
        for name, init in suite.inits.items():
            if init.arch not in ARCHS:
                out.append(Problem(("inits", name, "arch"), f"unknown architecture "
                                   f"{init.arch!r}{did_you_mean(init.arch, ARCHS)}"))
        for name, stage in suite.stages.items():
            out.extend(_check_method(name, stage.method, stage.params))
        return out

    def smoke_params(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The method's own smoke settings (unchanged when the method cannot be found: the
        check reports it)."""
        try:
            model = method_params(method)
        except MethodNotFound:
            return params
        return model.smoke(params)


RESOLVER = RegistryResolver()


def _check_method(stage: str, method: str, params: dict) -> list[Problem]:
    loc = ("stages", stage, "method")
    try:
        model = method_params(method)
    except MethodNotFound as exc:
        return [Problem(loc, f"{exc}{did_you_mean(method, [*METHODS, *PLUGIN_METHODS])}")]
    try:
        model.model_validate(params)
    except ValidationError as exc:
        probs = []
        for e in exc.errors(include_url=False):
            sub = tuple(p for p in e["loc"] if isinstance(p, int | str))
            msg = (f"unknown parameter {sub[-1]!r} of method {method!r}"
                   if e["type"] == "extra_forbidden" else e["msg"])
            probs.append(Problem(("stages", stage, "params", *sub), msg))
        return probs
    return []


def load_suite(path: str | Path, overrides: Sequence[str] = (),
               env: Mapping[str, str] | None = None, profile: str | None = None) -> LoadedSuite:
    """Load and validate a suite, its registry names included (see
    :func:`bench.config.loader.load_suite`), after the installed plugins are registered
    (:mod:`bench.plan.plugins`)."""
    load_plugins()
    return _load_suite(path, overrides, env, profile, resolver=RESOLVER)
