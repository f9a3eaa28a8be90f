"""Unit runners: claim a unit, run it, record what happened — a stage, a cell's lr search, or
some trials of one cell (one protocol call).

Each runner does its work inside :meth:`UnitRunner.recorded`, the one place that turns an
outcome into run states: Ctrl-C (or a stop request) ends the held runs KILLED and re-raises; any
other exception ends them FAILED with its reason (a CUDA out-of-memory gets a hint). A trial's
learning rate is decided in one place, :func:`bench.train.lr_choice.resolve_lr`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from bench.config.names import parse_ref
from bench.data.loader import ImageSet
from bench.data.store import ImageStore
from bench.execute.artifacts import Artifacts
from bench.execute.claims import ClaimRequest, Claims, Heartbeat
from bench.execute.curves import Curves
from bench.execute.leases import Lease, LeaseLost
from bench.execute.run_view import acting, study_name, trial_run_name
from bench.execute.scheduler import RunSummary, search_key
from bench.plan import Cell, Plan, StageNode, Trial, key_view
from bench.plan_view import RESOLVED_SUITE
from bench.progress import Progress
from bench.protocols import protocol_for
from bench.seeds import acting_sources, trial_seeds
from bench.track import FAILED, FINISHED, KILLED, Tag, Tracker, flatten
from bench.train.lr_choice import resolve_lr

OOM_HINT = ("out of GPU memory: lower the batch_size or image_size of this stage/protocol, "
            "or run fewer workers per GPU")
INTERRUPTED = "interrupted by the user"


class StopRequested(Exception):
    """Ctrl-C asked the run to stop at the next safe point (after a checkpoint or a trial)."""


def failure_reason(exc: BaseException) -> str:
    """The text recorded for a failed unit (with a hint for CUDA out-of-memory)."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return f"{text.splitlines()[0]} — {OOM_HINT}"
    return text


class UnitRunner:
    """Runs units for one worker (``owner``) against one tracker."""

    def __init__(self, plan: Plan, tracker: Tracker, output: Path, images: ImageStore,
                 device: torch.device, progress: Progress, claims: Claims,
                 stop: Callable[[], bool]):
        self.plan = plan
        self.tracker = tracker
        self.output = output
        self.images = images
        self.device = device
        self.progress, self.say = progress, progress.say
        self.claims = claims
        self.stop = stop
        self.artifacts = Artifacts(plan, tracker, output)
        self.curves = Curves(tracker)
        self.heartbeat: Heartbeat | None = None
        self.counter = 0
        self.total = 0
        self.eta = "?"
        """The suite's ETA when the current unit started (the executor sets it)."""
        self._context: tuple[str, torch.nn.Module, dict] | None = None
        self._cell_runs: dict[str, str] = {}
        self._open: dict[str, Lease] = {}  # runs claimed and not yet ended, and their leases

    # ------------------------------------------------------------------ run states
    def step(self) -> str:
        """Advance the progress count; ``[i/n, eta h:mm:ss]``."""
        self.counter += 1
        self.progress.advance()
        return f"[{self.counter}/{self.total}, eta {self.eta}]"

    def _claim(self, units: list[tuple[ClaimRequest, dict[str, str]]]) -> list[str | None]:
        """Claim units together (one transaction takes their leases); hold the won ones and
        log their params."""
        claims = self.claims.claim_many([u for u, _ in units])
        for claim, (_, params) in zip(claims, units, strict=True):
            if claim is not None:
                self._open[claim.run_id] = claim.lease
                if self.heartbeat is not None:
                    self.heartbeat.hold(claim.run_id, claim.lease)
                if params:
                    self.tracker.log_params(claim.run_id, params)
        return [None if c is None else c.run_id for c in claims]

    def end(self, run_id: str, status: str = FINISHED, reason: str | None = None,
            place: Callable[[], None] | None = None) -> None:
        """End a held run (released from the heartbeat first). FINISHED is written fenced:
        ``place`` (putting shared files in place) and the status, only while the lease is the
        worker's, else :class:`LeaseLost` (nothing written). Another status releases the lease
        first and is not written when the lease was lost (its taker has ended the run)."""
        lease = self._open.pop(run_id, None)
        self.curves.flush(run_id)
        if self.heartbeat is not None:
            self.heartbeat.release(run_id)
        leases = self.claims.leases
        if lease is None:  # ended or released already (a requeue): nothing is written
            if status == FINISHED:
                raise LeaseLost(None, None)
            return
        if status == FINISHED:
            with leases.fenced(lease):
                if place is not None:
                    place()
                self.tracker.finish(run_id, status)
            return
        if not leases.release(lease):
            return
        if reason is None:
            self.tracker.finish(run_id, status)
        else:
            self.tracker.fail(run_id, reason, status)

    def fail_held(self, reason: str, status: str = FAILED) -> None:
        """End FAILED every run this worker claimed and has not ended (after a unit raised
        outside its recorded body): no claim outlives the unit that made it, so a worker never
        waits on its own runs."""
        for run_id in sorted(self._open):
            self.end(run_id, status, reason)

    @contextlib.contextmanager
    def recorded(self, run_ids: list[str], on_fail: Callable[[str], None] | None = None,
                 killed: str = INTERRUPTED) -> Iterator[None]:
        """Run a unit's body: interrupted → its runs still open KILLED (re-raised); failed →
        FAILED with the reason (runs the body already ended keep their state), then
        ``on_fail(reason)``, or re-raised when there is no ``on_fail``."""
        try:
            yield
        except LeaseLost as exc:  # taken over while paused: the others of the unit are redone
            for run_id in [r for r in run_ids if r in self._open]:
                self.end(run_id, KILLED, f"stopped: a run of its unit {exc}")
            raise
        except (KeyboardInterrupt, StopRequested):
            for run_id in [r for r in run_ids if r in self._open]:
                self.end(run_id, KILLED, killed)
            raise
        except Exception as exc:
            reason = failure_reason(exc)
            for run_id in [r for r in run_ids if r in self._open]:
                self.end(run_id, FAILED, reason)
            if on_fail is None:
                raise
            on_fail(reason)

    def _epoch_hook(self, run_id: str, label: str, total: int, phases: bool = False):
        """Per epoch: note the loss, show progress (the phase too when ``phases``), stop here
        when a stop was requested."""
        done = [0]

        def on_epoch(phase: str, epoch: int, loss: float) -> None:
            self.curves.add(run_id, f"{phase}_loss", loss, epoch)
            done[0] += 1
            self.progress.epoch(f"{label} ({phase})" if phases else label, done[0], total, loss)
            if self.heartbeat is not None:
                self.heartbeat.check(run_id)
            if self.stop():
                raise StopRequested

        return on_epoch

    # ------------------------------------------------------------------ stages
    def run_stage(self, node: StageNode) -> bool:
        """Claim and train one stage, logging its encoder as the artifact ``encoder.pt``.
        Returns False when another process holds or has finished it."""
        from bench.ssl.methods import resolve_method
        from bench.ssl.pretrain import run_stage

        spec = node.spec
        method_cls = resolve_method(spec.method)
        tags = {Tag.STAGE: node.name, Tag.CHAIN: node.label, Tag.PARENT_KEY: node.parent_key,
                Tag.DATA_HASH: node.data_hash, Tag.DEVICE: str(self.device)}
        for ref in spec.data:
            tags.update(self.artifacts.manifest_tag(ref))
        tags.update(self.artifacts.lineage_tags(node.init, None))
        if node.replicate:
            tags[Tag.REPLICATE] = node.replicate
        (run_id,) = self._claim([(ClaimRequest("stage", node.key, node.display, tags),
                                  flatten(acting(key_view(spec)), "stage."))])
        if run_id is None:
            return False
        self.artifacts.log_datasets(run_id, [(r, "pretraining") for r in spec.data])
        n_epochs = spec.warmup_epochs + spec.epochs
        with self.recorded([run_id], killed=f"{INTERRUPTED} (resumes from its last epoch "
                                            "checkpoint)"):
            self.say(f"{self.step()} stage {node.display} ({spec.method})")
            self.progress.unit(f"stage {node.display}", n_epochs)
            classes = self.plan.datasets[parse_ref(spec.data[0])[0]].classes
            data = self.images.union(spec.data, spec.repeat, spec.image_size,
                                     labelled=method_cls.needs_labels)
            backbone = self.artifacts.encoder(node.parent_key)
            ckpt = self.output / "checkpoints" / f"{node.key}.pt"
            hook = self._epoch_hook(run_id, f"stage {node.display}", n_epochs, phases=True)
            backbone, summary = run_stage(backbone, spec, method_cls, data,
                                          len(classes) if method_cls.needs_labels else None,
                                          self.device, ckpt, hook)
            self.tracker.log_metrics(run_id, summary)
            staged = self.artifacts.save_encoder(node.key, backbone, run_id)
            try:
                self.end(run_id, place=staged.place)
            finally:
                staged.discard()
            ckpt.unlink(missing_ok=True)
        return True

    # ------------------------------------------------------------------ cells
    def cell_run(self, cell: Cell) -> str:
        """The cell's parent run: the oldest existing one, else a new one (created once even
        when several workers race: the later ones delete theirs)."""
        if cell.key in self._cell_runs:
            return self._cell_runs[cell.key]
        existing = [r for r in self.tracker.runs_for_key(cell.key) if r.kind == "cell"]
        if existing:
            self._cell_runs[cell.key] = existing[0].run_id
            return existing[0].run_id
        tags = {Tag.CELL: cell.name, Tag.INIT: cell.init, Tag.CHAIN: "+".join(cell.chain),
                Tag.PROTOCOL: cell.protocol, Tag.ENCODER_KEY: cell.encoder_key}
        if cell.replicate:
            tags[Tag.REPLICATE] = cell.replicate
        for ref in (cell.spec.train, cell.spec.test):
            tags.update(self.artifacts.manifest_tag(ref))
        run_id = self.tracker.start("cell", cell.key, cell.display,
                                    flatten(acting(key_view(cell.spec)), "protocol."), tags)
        first = next(r for r in self.tracker.runs_for_key(cell.key) if r.kind == "cell")
        if first.run_id != run_id:
            self.tracker.delete_run(run_id)
        elif (suite_file := self.output / RESOLVED_SUITE).is_file():
            self.tracker.log_artifact(run_id, suite_file)
        self._cell_runs[cell.key] = first.run_id
        return first.run_id

    def cell_context(self, cell: Cell) -> tuple[torch.nn.Module, dict]:
        """The cell's encoder and a copy of its weights (kept while the worker stays on it)."""
        if self._context is None or self._context[0] != cell.encoder_key:
            backbone0 = self.artifacts.encoder(cell.encoder_key)
            state = {k: v.clone() for k, v in backbone0.state_dict().items()}
            self._context = (cell.encoder_key, backbone0, state)
        return self._context[1], self._context[2]

    def search(self, cell: Cell, seeds: dict[str, int], study: str, run_id: str,
               per_trial: bool = False) -> float:
        """The max lr of a cell (or of one trial) with the protocol's lr_finder or optuna; a
        per-trial optuna study is seeded by the trial (:func:`study_seed`)."""
        from bench.train.lr_search import optuna_search, study_seed
        from bench.train.trial import run_trial

        spec = cell.spec
        train = self.images.get(spec.train, spec.image_size)
        classes = self.plan.datasets[parse_ref(spec.train)[0]].classes
        backbone0, state = self.cell_context(cell)

        def fresh() -> torch.nn.Module:
            backbone0.load_state_dict(state)
            return backbone0

        if spec.lr_search.method == "lr_finder":
            res = run_trial(fresh(), spec, train, None, classes, seeds, self.device,
                            search_only=True)
            if res.lr_curve is not None:
                self.artifacts.log_curve(run_id, res.lr_curve)
            return res.max_lr

        def log(number: int, lr: float, value: float | None) -> None:
            metrics = {"optuna_lr": lr}
            if value is not None:
                metrics["optuna_val_accuracy"] = value
            self.tracker.log_metrics(run_id, metrics, step=number)

        self.say(f"  {cell.display}: optuna search of the max lr ({spec.lr_search.n_trials} "
                 f"candidates, validation split of the training part)")
        seed = study_seed(spec.lr_search, seeds) if per_trial else None
        attrs = {"bench.suite": self.plan.suite.name, "bench.cell": cell.name,
                 "bench.cell_key": cell.key, "bench.replicate": cell.replicate or ""}
        return optuna_search(spec, fresh, train, classes, seeds, self.device,
                             self.output / "optuna", study, log, seed, attrs).lr

    def run_search(self, cell: Cell) -> bool:
        """Claim and run a cell's lr search; log ``cell_max_lr`` on it and on the cell run."""
        parent = self.cell_run(cell)
        (run_id,) = self._claim([(ClaimRequest(
            "search", search_key(cell), f"{cell.display} lr search",
            {Tag.CELL: cell.name, Tag.CELL_KEY: cell.key}, parent), {})])
        if run_id is None:
            return False
        self.progress.unit(f"{cell.display} lr search", 1)
        failed: list[str] = []
        with self.recorded([run_id], on_fail=failed.append):
            sd = self.plan.suite.seeds
            lr = self.search(cell, trial_seeds(sd.base, sd.base, []),
                             study_name(cell.display, cell.key), run_id)
            self.tracker.log_metrics(run_id, {"cell_max_lr": lr})
            self.end(run_id)
            self.tracker.log_metrics(parent, {"cell_max_lr": lr})
        if failed:
            self.say(f"  {cell.display}: lr search FAILED {failed[0]}")
        else:
            self.say(f"  {cell.display}: max lr {lr:.3g} (searched once for the cell)")
        return True

    # ------------------------------------------------------------------ trials
    def _trial_claim(self, trial: Trial, parent: str) -> tuple[ClaimRequest, dict[str, str]]:
        """A trial's claim (tags: cell, seeds, data manifests, lineage) and its params."""
        cell, spec = trial.cell, trial.cell.spec
        tags = {Tag.CELL: cell.name, Tag.SEED: str(trial.seed), Tag.DEVICE: str(self.device),
                Tag.CELL_KEY: cell.key}
        tags.update({f"{Tag.SEED_PREFIX}{k}": str(v) for k, v in trial.seeds.items()})
        if cell.replicate:
            tags[Tag.REPLICATE] = cell.replicate
        for ref in (spec.train, spec.test):
            tags.update(self.artifacts.manifest_tag(ref))
        tags.update(self.artifacts.lineage_tags(cell.init, cell.stage_key))
        params = {"cell": cell.name, "seed": str(trial.seed),
                  **flatten(acting(key_view(spec)), "protocol.")}
        name = trial_run_name(trial.seed, cell.display)
        return ClaimRequest("trial", trial.key, name, tags, parent), params

    def run_trials(self, cell: Cell, todo: list[Trial], cell_lr: float | None,
                   summary: RunSummary) -> bool:
        """Claim and run some of a cell's pending trials (all of them in one protocol call
        when the protocol trains them together exactly as alone, else the first). Returns
        False when every one was taken by another process."""
        spec = cell.spec
        protocol = protocol_for(spec.kind)
        classes = self.plan.datasets[parse_ref(spec.train)[0]].classes
        parent = self.cell_run(cell)
        vary = acting_sources(self.plan.suite.seeds.vary, spec.label_fraction)
        redrawn = "subset" in vary  # each trial trains on its own subset: one at a time
        if not (len(todo) > 1 and not redrawn and protocol.bankable(spec, vary)):
            todo = todo[:1]
        run_ids = self._claim([self._trial_claim(t, parent) for t in todo])
        claimed = [(t, r) for t, r in zip(todo, run_ids, strict=True) if r is not None]
        if not claimed:
            return False
        ids = [r for _, r in claimed]
        subset = None
        if spec.label_fraction < 1:  # the same for every trial claimed (redrawn: one trial)
            subset = self.artifacts.subset_manifest(claimed[0][0])
        for run_id in ids:
            self.artifacts.log_datasets(run_id, [(spec.train, "training"), (spec.test, "test")],
                                        subset=subset)

        finished: set[str] = set()

        def failed(reason: str) -> None:
            for t, run_id in claimed:
                if run_id not in finished:
                    self._report(t, None, reason, summary)

        label = (f"{cell.display} HeadBank ×{len(claimed)}" if len(claimed) > 1
                 else f"{cell.display} seed={claimed[0][0].seed}")
        total = spec.n_warmup + spec.epochs
        with self.recorded(ids, on_fail=failed):
            backbone0, state = self.cell_context(cell)
            train = self.images.get(spec.train, spec.image_size)
            if subset is not None:
                train = ImageSet(train.images[subset.rows], train.labels[subset.rows])
            test = self.images.get(spec.test, spec.image_size)
            self.progress.unit(label, total)
            lr = resolve_lr(spec.lr_search, cell_lr)
            if lr == "optuna":  # searched in this trial, before it trains
                (trial, run_id), = claimed
                lr = self.search(cell, trial.seeds, study_name(cell.display, trial.key,
                                                               trial.seed), run_id,
                                 per_trial=True)
            backbone0.load_state_dict(state)
            hook = (self._epoch_hook(claimed[0][1], label, total) if len(claimed) == 1
                    else None)
            results = protocol.run(backbone0, spec, train, test, classes,
                                   [t.seeds for t, _ in claimed], self.device,
                                   None if lr == "lr_finder" else lr, hook)
            for (t, run_id), res in zip(claimed, results, strict=True):
                if hook is not None:
                    res.history = []  # already logged per epoch
                self.artifacts.log_trial(t, run_id, res, classes)
                self.end(run_id)
                finished.add(run_id)
                self._report(t, res.metrics, "", summary)
        return True

    def _report(self, trial: Trial, metrics: dict | None, error: str,
                summary: RunSummary) -> None:
        name = f"{self.step()} {trial.cell.display} seed={trial.seed}"
        if metrics is None:
            summary.failed.append(f"{trial.cell.display} seed={trial.seed}: {error}")
            self.say(f"{name}: FAILED {error}")
        else:
            summary.trials_run += 1
            shown = ", ".join(f"{k} {metrics[k]:.3f}" for k in trial.cell.spec.metrics[:2])
            self.say(f"{name}: {shown}")

