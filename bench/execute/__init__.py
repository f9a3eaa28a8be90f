"""Executors: run a plan's units — here (``local``), in worker processes (``workers``) or as
SLURM array tasks (``slurm``). Each implements :class:`Executor` and is found through
:data:`EXECUTORS` (name → ``module:Class``, imported when used), so a new executor is one file
plus one line here."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.execute.request import RunRequest
    from bench.progress import Progress

from bench.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

__all__ = ["EXECUTORS", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "Executor",
           "executor_for"]


class Executor:
    """Runs a request's unfinished units and returns the command's exit code."""

    def run(self, request: RunRequest, progress: Progress) -> int:
        raise NotImplementedError


EXECUTORS: dict[str, str | type[Executor]] = {
    "local": "bench.execute.local:Local",
    "workers": "bench.execute.workers:Workers",
    "slurm": "bench.execute.slurm:Slurm",
}


def executor_for(name: str) -> Executor:
    """An instance of the executor registered as ``name``."""
    target = EXECUTORS[name]
    if isinstance(target, str):
        module, _, cls = target.partition(":")
        target = getattr(importlib.import_module(module), cls)
    return target()
