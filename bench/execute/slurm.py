"""``bench run --executor slurm``: the suite as SLURM job arrays, through submitit.

The DAG becomes waves: stages of depth 1, stages of depth 2, …, then every trial. Each wave's
pending units are packed into tasks of about ``slurm.pack_minutes`` of estimated work (a cell's
trials stay together so that a HeadBank can train them at once), the tasks go out as job arrays
of at most ``max_array_size`` tasks, and the next wave is submitted when the previous one has
ended; with sequential seeds the trials go out one look at a time, each look's wave made from
the store once the previous one ended (only the cells still undecided get it). A task is an
ordinary worker restricted to its pack: it claims each unit, so a requeued or
duplicated task never runs a unit twice. On timeout or preemption submitit calls
:meth:`PackTask.checkpoint`: the task's RUNNING claims are released (KILLED) and it is requeued —
stages resume from their last epoch checkpoint.

This process waits for the waves (run it in tmux/screen or a small CPU job); if it dies, running
``bench run --executor slurm`` again picks up what is left.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config.schema import SlurmSpec
from bench.execute import Executor
from bench.execute.leases import Leases, claims_uri_for
from bench.execute.request import RunRequest
from bench.plan import Plan, StageNode, Trial
from bench.progress import Progress
from bench.track import FINISHED, RUNNING, RunRecord, Tag, Tracker

_CURRENT: list[Any] = []  # the LocalExecutor of a running task (for checkpoint())


@dataclass
class Pack:
    """Unit keys run by one array task, with their estimated seconds."""

    keys: list[str] = field(default_factory=list)
    seconds: float = 0.0


def stage_depth(plan: Plan) -> dict[str, int]:
    """Depth of every stage in the chain DAG (1 = trained from an initialisation)."""
    by_key = {s.key: s for s in plan.stages}
    depth: dict[str, int] = {}

    def d(node: StageNode) -> int:
        if node.key not in depth:
            parent = by_key.get(node.parent_key)
            depth[node.key] = 1 if parent is None else d(parent) + 1
        return depth[node.key]

    for s in plan.stages:
        d(s)
    return depth


def estimate_seconds(records: Sequence[RunRecord], spec: SlurmSpec, plan: Plan) -> dict[str, float]:
    """Estimated seconds per unit key: the mean duration of finished trials of the same cell,
    of finished stages, else the suite's defaults."""
    per_cell: dict[str, list[float]] = {}
    stages: list[float] = []
    for r in records:
        if r.status != FINISHED or not r.end_time:
            continue
        secs = (r.end_time - r.start_time) / 1000
        if r.kind == "trial":
            per_cell.setdefault(r.tags.get(Tag.CELL_KEY, ""), []).append(secs)
        elif r.kind == "stage":
            stages.append(secs)
    out: dict[str, float] = {}
    for t in plan.trials:
        seen = per_cell.get(t.cell.key)
        out[t.key] = sum(seen) / len(seen) if seen else spec.trial_minutes * 60
    for s in plan.stages:
        out[s.key] = sum(stages) / len(stages) if stages else spec.stage_minutes * 60
    return out


def pack_units(groups: Sequence[Sequence[str]], seconds: dict[str, float],
               target: float) -> list[Pack]:
    """Greedy packing in order: fill a pack up to ``target`` seconds; a group (a cell's trials)
    is split only when it alone exceeds the target."""
    packs: list[Pack] = []
    cur = Pack()
    for group in groups:
        group_s = sum(seconds[k] for k in group)
        if cur.keys and cur.seconds + group_s > target:
            packs.append(cur)
            cur = Pack()
        for k in group:
            if cur.keys and cur.seconds + seconds[k] > target:
                packs.append(cur)
                cur = Pack()
            cur.keys.append(k)
            cur.seconds += seconds[k]
    if cur.keys:
        packs.append(cur)
    return packs


def max_array_size(spec: SlurmSpec) -> int:
    """``slurm.max_array_size``, else SLURM's MaxArraySize − 1 (the largest index), else 1000."""
    if spec.max_array_size:
        return spec.max_array_size
    if spec.cluster == "slurm" and shutil.which("scontrol"):
        try:
            out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                                 timeout=20).stdout
            for line in out.splitlines():
                if line.strip().startswith("MaxArraySize"):
                    return max(1, int(line.split("=")[1].strip()) - 1)
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    return 1000


def chunks(packs: Sequence[Pack], size: int) -> list[list[Pack]]:
    """Split the packs into arrays of at most ``size`` tasks."""
    return [list(packs[i:i + size]) for i in range(0, len(packs), size)]


def waves(plan: Plan, pending: Sequence[Trial], needed: set[str]) -> list[list[list[str]]]:
    """The DAG as waves of unit groups: stage depths first (one group per stage), then the
    pending trials grouped by cell."""
    depth = stage_depth(plan)
    out: list[list[list[str]]] = []
    for d in sorted({depth[k] for k in needed}):
        out.append([[s.key] for s in plan.stages if s.key in needed and depth[s.key] == d])
    by_cell: dict[str, list[str]] = {}
    for t in pending:
        by_cell.setdefault(t.cell.key, []).append(t.key)
    if by_cell:
        out.append(list(by_cell.values()))
    return out


def unit_waves(plan: Plan, tracker: Tracker, pending: Sequence[Trial], needed: set[str]
               ) -> Iterator[list[list[str]]]:
    """:func:`waves`, with sequential seeds one trial wave per look: each computed from the
    store once the waves before it ended (the trials the design lets run now and that are not
    finished; a trial is submitted once per ``bench run``)."""
    fixed = waves(plan, pending, needed)
    if plan.suite.seeds.sequential is None or not pending:
        yield from fixed
        return
    from bench.execute.sequential import SequentialGate

    gate = SequentialGate.of(plan)
    assert gate is not None
    yield from fixed[:-1]  # the stages
    submitted: set[str] = set()
    while True:
        best = tracker.status_by_key()
        todo = [t for t in pending if t.key not in submitted and gate.allows(best, t)
                and not (t.key in best and best[t.key].status == FINISHED)]
        if not todo:
            return
        submitted |= {t.key for t in todo}
        by_cell: dict[str, list[str]] = {}
        for t in todo:
            by_cell.setdefault(t.cell.key, []).append(t.key)
        yield list(by_cell.values())


class PackTask:
    """What one array task runs: the run request restricted to a pack of unit keys (picklable:
    submitit sends it to the task as is)."""

    def __init__(self, request: RunRequest):
        self.request = request

    @property
    def keys(self) -> list[str]:
        return list(self.request.only or ())

    def __call__(self) -> dict[str, Any]:
        from bench.execute.local import LocalExecutor
        from bench.progress import Progress

        plan, tracker = self.request.open()
        executor = LocalExecutor(plan, tracker, self.request.output, Progress(),
                                 self.request.claims_uri)
        executor.only = set(self.keys)
        _CURRENT[:] = [executor]
        try:
            summary = executor.run()
        finally:
            _CURRENT.clear()
        return {"stages_run": summary.stages_run, "trials_run": summary.trials_run,
                "failed": summary.failed, "interrupted": summary.interrupted}

    def checkpoint(self) -> Any:
        """Timeout or preemption: release this task's claims, then requeue the same pack."""
        import submitit

        from bench.track import KILLED

        for executor in _CURRENT:
            try:  # the leases are released and the runs KILLED; the requeue happens regardless
                executor.runner.fail_held("requeued after a SLURM timeout or preemption", KILLED)
            except Exception:
                pass
        return submitit.helpers.DelayedSubmission(PackTask(self.request))


def make_executor(spec: SlurmSpec, folder: Path) -> Any:
    """A configured submitit executor."""
    try:
        import submitit
    except ImportError as exc:
        from bench.errors import BenchError

        raise BenchError("--executor slurm needs submitit: pip install 'bench[slurm]'") from exc
    executor = submitit.AutoExecutor(folder=str(folder), cluster=spec.cluster,
                                     slurm_max_num_timeout=spec.max_requeues,
                                     local_max_num_timeout=spec.max_requeues)
    params: dict[str, Any] = {
        "timeout_min": spec.time_min, "cpus_per_task": spec.cpus_per_task,
        "mem_gb": spec.mem_gb, "name": "bench",
    }
    if spec.cluster == "slurm":
        params.update(gpus_per_node=spec.gpus_per_task, tasks_per_node=1, nodes=1,
                      slurm_array_parallelism=spec.array_parallelism,
                      slurm_setup=list(spec.setup))
        extra = dict(spec.additional)
        if spec.account:
            extra["account"] = spec.account
        if spec.qos:
            extra["qos"] = spec.qos
        if spec.partition:
            params["slurm_partition"] = spec.partition
        if extra:
            params["slurm_additional_parameters"] = extra
    executor.update_parameters(**params)
    return executor


def run_slurm(plan: Plan, tracker: Tracker, request: RunRequest, pending: Sequence[Trial],
              needed: set[str], say: Callable[[str], None], poll: float | None = None) -> int:
    """Submit the waves and wait for them; return 0 when every unit finished, else 1.
    ``poll``: seconds between looks at the jobs (default ``BENCH_POLL_S``, else 10)."""
    if poll is None:
        poll = float(os.environ.get("BENCH_POLL_S", "10"))
    spec = plan.suite.slurm
    folder = Path(spec.folder) if spec.folder else request.output / "slurm"
    executor = make_executor(spec, folder)
    size = max_array_size(spec)
    failed = 0
    leases = Leases(claims_uri_for(request.claims_uri, tracker.uri, request.output))
    for i, wave in enumerate(unit_waves(plan, tracker, pending, needed), 1):
        records = tracker.runs()
        done = {r.key for r in records if r.status == FINISHED}
        # units held by live tasks (e.g. of an earlier, interrupted submission) are not resubmitted
        held = leases.live_keys() & {r.key for r in records if r.status == RUNNING}
        groups = [[k for k in g if k not in done and k not in held] for g in wave]
        groups = [g for g in groups if g]
        wave_held = held & {k for g in wave for k in g}
        if wave_held:
            say(f"wave {i}: {len(wave_held)} unit(s) still running from an earlier submission")
        if not groups:
            try:
                while wave_held & leases.live_keys():
                    time.sleep(poll)
            except KeyboardInterrupt:
                return 130
            continue
        seconds = estimate_seconds(records, spec, plan)
        packs = pack_units(groups, seconds, spec.pack_minutes * 60)
        arrays = chunks(packs, size)
        jobs = []
        for chunk in arrays:
            with executor.batch():
                for pack in chunk:
                    jobs.append(executor.submit(PackTask(request.restricted(pack.keys))))
        units = sum(len(g) for g in groups)
        say(f"wave {i}: {units} unit(s) in {len(packs)} task(s) "
            f"({len(arrays)} array(s)); job {jobs[0].job_id.split('_')[0]} …")
        try:
            while not all(j.done() for j in jobs):
                time.sleep(poll)
        except KeyboardInterrupt:
            ids = sorted({j.job_id.split("_")[0] for j in jobs})
            say(f"interrupted: the submitted jobs keep running (scancel {' '.join(ids)} to stop "
                "them); run the same command again to follow and submit the next waves")
            return 130
        for job, pack in zip(jobs, packs, strict=True):  # the arrays hold the packs in order
            try:
                result = job.result()
                for f in result["failed"]:
                    say(f"  FAILED {f}")
                failed += len(result["failed"])
            except Exception as exc:
                failed += 1
                say(f"  task {job.job_id} ({len(pack.keys)} unit(s)) ended with an error: "
                    f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc!r} "
                    f"(log: {folder})")
    finished = {r.key for r in tracker.runs() if r.status == FINISHED}
    left = [t for t in plan.trials if t.key not in finished]
    say(f"slurm: {len(plan.trials) - len(left)} of {len(plan.trials)} trial(s) finished")
    return 0 if not left and not failed else 1


class Slurm(Executor):
    """``bench run --executor slurm``: the data prepared here, then waves of array tasks."""

    def run(self, request: RunRequest, progress: Progress) -> int:
        from bench.execute.local import prepared

        plan, tracker, pending, needed = prepared(request, progress, elsewhere=True)
        return run_slurm(plan, tracker, request, pending, needed, progress.say)
