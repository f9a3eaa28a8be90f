"""The local executor: one worker that runs a plan's unfinished units in DAG order.

Units are stages, cell-level lr searches and trials (a cell's trials that a HeadBank can train
together form one unit). The worker repeatedly reads the suite's runs from the tracker, picks the
first unit that is ready (its stage's encoder exists, its cell's lr is known) and not held by
anyone, claims it atomically (:mod:`bench.execute.claims`) and runs it; it waits while the only
remaining work is held by other processes, and stops when nothing is left.

Resume semantics: a unit whose key has a FINISHED run is skipped; FAILED runs from before this run
started and KILLED runs are run again; RUNNING runs whose claimant died are marked KILLED and
redone. A failing unit is recorded FAILED with its reason and the suite goes on (what depends on
it is reported failed); Ctrl-C finishes the current checkpoint, marks the current run KILLED and
stops. Any number of workers (processes, GPUs, SLURM tasks, machines sharing a tracking server)
may run one suite at the same time: no unit runs twice.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench.data.cache import cache_dir
from bench.data.store import ImageStore
from bench.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, BenchError
from bench.execute import Executor
from bench.execute.claims import Claims, Heartbeat
from bench.execute.leases import LeaseLost, Leases, claims_uri_for, new_owner, retire_owner
from bench.execute.numerics import check_numerics, cpu_threads, numerics
from bench.execute.request import RunRequest
from bench.execute.run_view import cell_aggregates
from bench.execute.runners import StopRequested, UnitRunner, failure_reason
from bench.execute.scheduler import RunSummary, Scheduler, Snapshot, needed_stages, search_key
from bench.execute.store import StoreView
from bench.plan import Plan, Trial
from bench.plan.cost import seconds_per_cost, unit_costs
from bench.plan.rates import finished_units, fit, key_seconds
from bench.progress import Eta, Progress
from bench.track import FINISHED, Tag, Tracker, best_by_key

log = logging.getLogger("bench.run")

__all__ = ["LeakageError", "Local", "LocalExecutor", "RunSummary", "StopRequested", "pick_device",
           "prepared"]


class LeakageError(BenchError):
    """A test image is also trained on (and the suite does not allow it)."""


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BenchError("device 'cuda' was asked for (the suite's `device`, or --device) but "
                         "torch sees no CUDA device here: run on a GPU node, or set device: "
                         "auto (CUDA where there is one, else the CPU)")
    return torch.device(name)


def _check_precision(plan: Plan, device: torch.device) -> None:
    """fp16 autocast exists on CUDA only: refused before anything trains."""
    if device.type == "cuda":
        return
    used = [(f"stages.{s.name}", s.spec) for s in plan.stages]
    used += [(f"protocols.{c.protocol}", c.spec) for c in plan.cells]
    bad = sorted({where for where, spec in used if spec.precision == "fp16"})
    if bad:
        raise BenchError(f"{', '.join(w + '.precision' for w in bad)}: fp16 needs a CUDA device "
                         f"and this run is on {device.type} (set precision: bf16 or fp32 there, "
                         "or run where CUDA is)")


class StopFlag:
    """A stop request shared with the unit runner (calling it reads it; no reference back to
    the executor, so the executor and its scratch folder go as soon as it is dropped)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested


class LocalExecutor:
    """One worker: schedules a plan's units (:mod:`bench.execute.scheduler`) and runs each one
    it claims (:mod:`bench.execute.runners`) against a tracker."""

    def __init__(self, plan: Plan, tracker: Tracker, output: Path,
                 progress: Progress | Callable[[str], None] | None = None,
                 claims_uri: str | None = None, workers: int = 1):
        self.plan = plan
        self.tracker = tracker
        self.output = output
        if not isinstance(progress, Progress):
            progress = Progress(sink=progress or log.info)
        self.progress = progress
        self.say = progress.say
        suite = plan.suite
        self.device = pick_device(suite.device)
        _check_precision(plan, self.device)
        from bench.train.loop import set_compile

        set_compile(suite.compile or os.environ.get("BENCH_COMPILE") == "1")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed image sizes: pick the fastest kernels
        threads = cpu_threads(suite.threads, workers)
        if threads and self.device.type == "cpu":
            torch.set_num_threads(threads)
        self.numerics = numerics(self.device, threads)
        self.images = ImageStore(plan.datasets, cache_dir(output), pin=self.device.type == "cuda",
                                 say=self.say)
        self._stop = StopFlag()
        self.leases = Leases(claims_uri_for(claims_uri, tracker.uri, output))
        self.owner = new_owner()
        self.claims = Claims(tracker, self.leases, self.owner, {Tag.NUMERICS: self.numerics})
        self.poll_seconds = float(os.environ.get("BENCH_POLL_S", "5"))
        self.only: set[str] | None = None  # restrict to these unit keys (SLURM packs)
        self.runner = UnitRunner(plan, tracker, output, self.images, self.device, progress,
                                 self.claims, self._stop)
        self._store = StoreView(tracker)
        self.trains_here = True  # False: only prepares for processes elsewhere (SLURM tasks)

    @property
    def stop_requested(self) -> bool:
        """Whether Ctrl-C asked this worker to stop at the next safe point."""
        return self._stop.requested

    @stop_requested.setter
    def stop_requested(self, value: bool) -> None:
        self._stop.requested = value

    # ------------------------------------------------------------------ all
    def run(self) -> RunSummary:
        """Run everything unfinished; return what happened.

        The first Ctrl-C (SIGINT) asks for a stop at the next safe point — after the current
        stage epoch's checkpoint, or at the current trial's next epoch (that trial is recorded
        KILLED and redone next time); a second Ctrl-C stops at once.
        """
        import signal
        import threading

        previous = None

        def on_sigint(signum: int, frame: object) -> None:
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True
            self.say("stopping after the current step (Ctrl-C again to stop at once) …")

        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, on_sigint)
        t0 = time.perf_counter()
        try:
            with Heartbeat(self.leases) as heartbeat:
                self.runner.heartbeat = heartbeat
                return self._run(t0)
        except StopRequested:
            return RunSummary(interrupted=True, seconds=time.perf_counter() - t0)
        finally:
            self.runner.heartbeat = None
            retire_owner(self.owner)
            self.leases.close()
            self.progress.close()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def view(self, since_ms: int) -> Snapshot:
        """Read the store; dead claims found on the way are marked KILLED."""
        records = self._store.refresh()
        if self.claims.close_dead(records):
            records = self._store.refresh()
        return Snapshot(best_by_key(records), since_ms)

    def prepare(self, summary: RunSummary | None = None) -> tuple[list[Trial], set[str], int]:
        """Close dead claims, find the pending trials and the stages they need, decode their
        data and run the leakage guard. Returns (pending trials, needed stage keys, start ms)."""
        summary = summary or RunSummary()
        plan = self.plan
        since_ms = int(time.time() * 1000)
        self.runner.artifacts.remove_leftovers()
        records = self._store.refresh(full=True)
        self.claims.check_shared(records)
        stale = self.claims.close_dead(records)
        if stale:
            self.say(f"marked {stale} interrupted run(s) KILLED; their work will be redone")
        units = {s.key for s in plan.stages} | {t.key for t in plan.trials}
        units |= {search_key(c) for c in plan.cells}
        if self.trains_here:  # a SLURM submitter does not train: its tasks check their own
            check_numerics(records, units, self.numerics, self.tracker.uri)
        snap = self.view(since_ms)
        pending = [t for t in plan.trials if not snap.done(t.key) and self._mine(t.key)]
        summary.trials_skipped = len(plan.trials) - len(pending)
        done = {k for k in snap.best if snap.done(k)}
        needed = needed_stages(plan, pending, done)
        if self.only is not None:  # a pack runs its own stages; its trials' stages are done
            needed = {s.key for s in plan.stages if s.key in self.only and s.key not in done}
        summary.stages_skipped = len(plan.stages) - len(needed)
        if pending or needed:
            self.check_weights(pending, needed)
            self.check_batches(pending, needed)
            self.guard(pending, needed)
        return pending, needed, since_ms

    def _run(self, t0: float) -> RunSummary:
        summary = RunSummary()
        pending, needed, since_ms = self.prepare(summary)
        runner = self.runner
        runner.total = len(needed) + len(pending)
        self.progress.set_total(runner.total)

        def gave_up(label: str, reason: str) -> None:
            summary.failed.append(f"{label}: {reason}")
            runner.step()

        gate = None
        if self.plan.suite.seeds.sequential is not None:  # scipy.stats only when it is used
            from bench.execute.sequential import SequentialGate

            gate = SequentialGate.of(self.plan)
        scheduler = Scheduler(self.plan, pending, needed, gave_up,
                              (lambda snap, t: gate.allows(snap.best, t)) if gate else None)
        todo = needed | {t.key for t in pending}
        work, prior = self._work(todo, since_ms)
        eta = Eta(sum(work.values()), prior=prior)
        while True:
            if self.stop_requested:
                raise StopRequested
            snap = self.view(since_ms)
            unit, waiting = scheduler.next_unit(snap)
            if unit is None:
                if not waiting:
                    break
                time.sleep(self.poll_seconds)
                continue
            stopped = {t.key for t in gate.stopped(snap.best, pending)} if gate else set()
            runner.eta = eta.update(sum(  # what no worker of this run finished or gave up
                c for k, c in work.items() if not (snap.done(k) or snap.failed_now(k)
                                                   or k in scheduler.given_up
                                                   or k in stopped)))
            self.progress.eta(runner.eta)
            try:
                if unit.stage is not None:
                    if runner.run_stage(unit.stage):
                        summary.stages_run += 1
                elif unit.kind == "search":
                    assert unit.cell is not None
                    runner.run_search(unit.cell)
                else:
                    assert unit.cell is not None
                    runner.run_trials(unit.cell, unit.trials, snap.cell_lr(unit.cell), summary)
            except (KeyboardInterrupt, StopRequested):
                raise
            except LeaseLost as exc:  # paused past the TTL: another worker took the unit over
                self.say(f"  {unit.label}: {exc}; its result is discarded")
            except Exception as exc:  # recorded on its run; what depends on it is given up
                runner.fail_held(failure_reason(exc))
                summary.failed.append(f"{unit.label}: {failure_reason(exc)}")
                self.say(f"  FAILED: {failure_reason(exc)}")
        snap = self.view(since_ms)
        stopped = gate.stopped(snap.best, self.plan.trials) if gate else []
        mine = {t.key for t in pending}
        summary.trials_stopped = len([t for t in stopped if t.key in mine])
        self._finish_cells(snap, {t.key for t in stopped})
        summary.seconds = time.perf_counter() - t0
        return summary

    def _work(self, todo: set[str], since_ms: int) -> tuple[dict[str, float], float | None]:
        """The ETA's weight of each unit to do, and its seconds per weight before any unit of
        this run finished: the cost model's predicted seconds (rates of the store's finished
        units, per unit kind; prior 1) when there are some, else forward-pass costs with the
        pooled seconds per cost."""
        costs = unit_costs(self.plan)
        snap = self.view(since_ms)
        finished = finished_units(self.plan, snap.best)
        if finished:
            done = {k for k in snap.best if snap.done(k)}
            predicted = key_seconds(self.plan, fit(finished), done)
            if todo <= predicted.keys():
                return {k: predicted[k] for k in todo}, 1.0
        return {k: c for k, c in costs.items() if k in todo}, seconds_per_cost(snap, costs)

    def _finish_cells(self, snap: Snapshot, stopped: set[str]) -> None:
        """Mark a cell run FINISHED once every trial of the cell has finished (but those
        sequential seeds stopped), with the mean, SD and n of each metric over its trials
        (cells side by side in the MLflow runs table)."""
        for cell in self.plan.cells:
            rec = snap.best.get(cell.key)
            if rec is None or rec.kind != "cell" or rec.status == FINISHED:
                continue
            trials = [t for t in self.plan.trials_of(cell) if t.key not in stopped]
            if all(snap.done(t.key) for t in trials):
                self.tracker.log_metrics(rec.run_id, cell_aggregates(
                    [f"test_{m}" for m in cell.spec.metrics],
                    [snap.best[t.key].metrics for t in trials]))
                self.tracker.finish(rec.run_id)

    def check_batches(self, pending: list[Trial], needed: set[str]) -> None:
        """Say, before anything trains, where a batch is larger than its data and where an lr
        is far outside those that train."""
        from bench.plan.build import batch_problems, lr_problems

        cells = list({t.cell.key: t.cell for t in pending}.values())
        stages = [s for s in self.plan.stages if s.key in needed]
        for problem in batch_problems(self.plan, cells, stages) + lr_problems(self.plan, cells,
                                                                              stages):
            self.say(f"warning: {problem}")

    def check_weights(self, pending: list[Trial], needed: set[str]) -> None:
        """Open every weights file the pending work starts from (type, keys and shapes) before
        anything trains: a bad file is one message and exit 2, not a failure per trial."""
        from bench.models.weights import check_init

        roots = {t.cell.init for t in pending} | {s.init for s in self.plan.stages
                                                   if s.key in needed}
        for name in sorted(roots):
            spec = self.plan.suite.inits[name]
            if spec.weights == "random":
                continue
            try:
                check_init(spec.arch, spec.weights)
            except Exception as exc:  # corrupt, empty, wrong keys or shapes, not a state dict
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise BenchError(f"inits.{name}.weights ({spec.weights}): {first}") from exc

    def _mine(self, key: str) -> bool:
        return self.only is None or key in self.only

    def guard(self, pending: list[Trial], needed: set[str]) -> None:
        """Decode what the pending work uses, then run the leakage guard (before any training)."""
        from bench.data.leakage import check_leakage

        for node in self.plan.stages:
            if node.key in needed:
                for ref in node.spec.data:
                    self.images.get(ref, node.spec.image_size)
        for cell in dict.fromkeys(t.cell.name for t in pending):
            spec = next(c.spec for c in self.plan.cells if c.name == cell)
            self.images.get(spec.train, spec.image_size)
            self.images.get(spec.test, spec.image_size)
        report = check_leakage(self.plan, self.images.pixel_hashes)
        for w in report.warnings:
            self.say(f"warning: {w}")
        if report.errors:
            raise LeakageError("leakage guard: a test image is also trained on\n  "
                               + "\n  ".join(report.errors)
                               + "\n(fix the split, or set allow_leakage: <reason> in the suite)")


class Local(Executor):
    """``bench run``: one worker in this process."""

    def run(self, request: RunRequest, progress: Progress) -> int:
        plan, tracker = request.open()
        executor = LocalExecutor(plan, tracker, request.output, progress, request.claims_uri)
        executor.only = set(request.only) if request.only is not None else None
        try:
            summary: RunSummary | None = executor.run()
        except KeyboardInterrupt:
            summary = None
        if summary is None or summary.interrupted:
            print("interrupted: finished work is kept; run the same command to resume",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
        print(f"{summary.stages_run} stage(s) trained, {summary.stages_skipped} already done; "
              f"{summary.trials_run} trial(s) run, {summary.trials_skipped} already done; "
              + (f"{summary.trials_stopped} not needed (sequential seeds: their cells' "
                 "contrasts were decided); " if summary.trials_stopped else "") +
              f"{len(summary.failed)} failed; {summary.seconds:.1f} s")
        for f in summary.failed:
            print(f"  FAILED {f}", file=sys.stderr)
        print(f"tracking: {tracker.uri}")
        return EXIT_OK if summary.ok else EXIT_FAILED


def prepared(request: RunRequest, progress: Progress, elsewhere: bool = False
             ) -> tuple[Plan, Tracker, list[Trial], set[str]]:
    """Open a request and prepare its data once (decoded cache, leakage guard) before other
    processes run it: (plan, tracker, pending trials, needed stage keys). ``elsewhere``: they run
    on other machines (SLURM), whose numerics they check themselves."""
    plan, tracker = request.open()
    executor = LocalExecutor(plan, tracker, request.output, progress, request.claims_uri,
                             request.workers)
    executor.trains_here = not elsewhere
    pending, needed, _ = executor.prepare()
    progress.close()
    return plan, tracker, pending, needed
