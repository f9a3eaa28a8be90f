"""What ``bench run`` asks an executor for: a picklable request (no torch).

Workers and SLURM array tasks receive the same request (restricted to their units with
``only``), never a command line to parse again; a worker process gets it as the equivalent
``bench run`` arguments (:meth:`RunRequest.argv`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.plan import Plan
    from bench.track import Tracker


@dataclass(frozen=True)
class RunRequest:
    """One ``bench run``: the suite and how it was loaded, where results go, how many workers.

    Attributes:
        suite: the suite file (absolute).
        overrides: ``--set`` texts, in order.
        profile: ``--profile`` (e.g. ``smoke``) or None.
        output: the output folder (absolute).
        tracking_uri: the MLflow store every worker writes to.
        workers: worker processes on this machine (``--workers``; ``--gpus`` gives one per GPU).
        gpus: the GPUs of ``--gpus``, one worker each.
        only: the unit keys this request may run (a SLURM pack), None for all.
        claims_uri: the claims (lease) store, ``--claims-uri``; None: ``BENCH_CLAIMS_URI``,
            else ``leases.db`` beside a SQLite tracking store or in the output folder.
        quiet: no progress bars.
    """

    suite: Path
    output: Path
    tracking_uri: str
    overrides: tuple[str, ...] = ()
    profile: str | None = None
    workers: int = 1
    gpus: tuple[str, ...] | None = None
    only: tuple[str, ...] | None = None
    quiet: bool = False
    claims_uri: str | None = None

    def restricted(self, keys: list[str]) -> RunRequest:
        """The same request, allowed to run only ``keys``."""
        return replace(self, only=tuple(keys))

    def argv(self) -> list[str]:
        """``bench run`` arguments that make the same request in another process."""
        out = [str(self.suite)]
        for o in self.overrides:
            out += ["--set", o]
        out += ["--output", str(self.output), "--tracking-uri", self.tracking_uri]
        if self.profile:
            out += ["--profile", self.profile]
        if self.claims_uri:
            out += ["--claims-uri", self.claims_uri]
        return out

    def open(self) -> tuple[Plan, Tracker]:
        """Load the suite, build its plan and open its tracker (the output folder is made)."""
        from bench.plan import build_plan, load_suite
        from bench.plan_view import RESOLVED_SUITE, resolved_suite
        from bench.procs import write_text_atomic
        from bench.track import Tracker

        loaded = load_suite(self.suite, self.overrides, profile=self.profile)
        self.output.mkdir(parents=True, exist_ok=True)
        plan = build_plan(loaded)
        write_text_atomic(self.output / RESOLVED_SUITE, resolved_suite(loaded))
        return plan, Tracker(self.tracking_uri, loaded.suite.name, self.output / "artifacts",
                             description=loaded.suite.description.strip() or None,
                             source=f"bench run {self.suite}")
