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

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench.config.names import parse_ref
from bench.data.store import ImageStore
from bench.errors import BenchError
from bench.execute.claims import ClaimRequest, Heartbeat, claim_many, close_dead, new_owner, retire_owner
from bench.plan import Cell, Plan, StageNode, Trial, key_view
from bench.progress import Progress
from bench.seeds import trial_seeds
from bench.track import (
    FAILED,
    FINISHED,
    KILLED,
    RUNNING,
    RunRecord,
    Tracker,
    best_by_key,
    flatten,
)

log = logging.getLogger("bench.run")


@dataclass
class RunSummary:
    """Counts of what a ``bench run`` did."""

    stages_run: int = 0
    stages_skipped: int = 0
    trials_run: int = 0
    trials_skipped: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed


class StopRequested(Exception):
    """Ctrl-C asked the run to stop at the next safe point (after a checkpoint or a trial)."""


class LeakageError(BenchError):
    """A test image is also trained on (and the suite does not allow it)."""


OOM_HINT = ("out of GPU memory: lower the batch_size or image_size of this stage/protocol, "
            "or run fewer workers per GPU")


def failure_reason(exc: BaseException) -> str:
    """The text recorded for a failed unit (with a hint for CUDA out-of-memory)."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return f"{text.splitlines()[0]} — {OOM_HINT}"
    return text


def cache_dir(output: Path) -> Path:
    """The decoded cache folder: ``$BENCH_CACHE`` or ``<output>/cache``."""
    env = os.environ.get("BENCH_CACHE")
    return Path(env) if env else output / "cache"


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("the suite asks for device 'cuda' but no CUDA device is available")
    return torch.device(name)


def search_key(cell: Cell) -> str:
    """Content key of a cell's lr search (the search depends on exactly what the cell does)."""
    return f"{cell.key}-lr"


@dataclass
class Unit:
    """One claimable piece of work: a stage, a cell's lr search, or trials of one cell."""

    kind: str  # "stage" | "search" | "trials"
    stage: StageNode | None = None
    cell: Cell | None = None
    trials: list[Trial] = field(default_factory=list)


@dataclass
class _View:
    """What the store says, as the scheduler needs it."""

    best: dict[str, RunRecord]
    since_ms: int

    def done(self, key: str) -> bool:
        r = self.best.get(key)
        return r is not None and r.status == FINISHED

    def busy(self, key: str) -> bool:
        r = self.best.get(key)
        return r is not None and r.status == RUNNING

    def failed_now(self, key: str) -> bool:
        """Failed during this run (by this or another worker): not retried until the next run."""
        r = self.best.get(key)
        return (r is not None and r.status == FAILED
                and (r.end_time or 0) >= self.since_ms)


class StoreView:
    """The suite's runs, re-read incrementally: after a full read, each refresh asks only for
    the RUNNING runs and those that ended since the previous refresh (minus a margin for clock
    differences between machines); a full read every ``full_every`` seconds catches runs deleted
    by hand. On a store of 800 runs a full read takes seconds, an incremental one milliseconds.
    """

    def __init__(self, tracker: Tracker, full_every: float = 600.0, margin_ms: int = 120_000):
        self.tracker = tracker
        self.full_every = full_every
        self.margin_ms = margin_ms
        self._records: dict[str, RunRecord] = {}
        self._last_ms: int | None = None
        self._last_full = 0.0

    def refresh(self, full: bool = False) -> list[RunRecord]:
        """The runs, oldest first."""
        now = time.time()
        if full or self._last_ms is None or now - self._last_full > self.full_every:
            self._records = {r.run_id: r for r in self.tracker.runs()}
            self._last_full = now
        else:
            running = self.tracker.runs(status=RUNNING)
            ended = self.tracker.runs(ended_since=self._last_ms - self.margin_ms)
            self._records = {k: r for k, r in self._records.items() if r.status != RUNNING}
            for r in running + ended:
                self._records[r.run_id] = r
        self._last_ms = int(now * 1000)
        return sorted(self._records.values(), key=lambda r: (r.start_time, r.run_id))


class LocalExecutor:
    """Runs a plan's units against a tracker, claiming each one."""

    def __init__(self, plan: Plan, tracker: Tracker, output: Path,
                 progress: Progress | Callable[[str], None] | None = None):
        self.plan = plan
        self.tracker = tracker
        self.output = output
        if not isinstance(progress, Progress):
            progress = Progress(sink=progress or log.info)
        self.progress = progress
        self.say = progress.say
        suite = plan.suite
        self.device = pick_device(suite.device)
        from bench.train.loop import set_compile

        set_compile(suite.compile or os.environ.get("BENCH_COMPILE") == "1")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed image sizes: pick the fastest kernels
        threads = suite.threads or int(os.environ.get("BENCH_THREADS", "0"))
        if threads:
            torch.set_num_threads(threads)
        self.images = ImageStore(plan.datasets, cache_dir(output), pin=self.device.type == "cuda",
                                 say=self.say)
        # scratch files on their way into the store; removed with the executor (or at exit)
        self._scratch = tempfile.TemporaryDirectory(prefix="bench-")
        self._tmp = Path(self._scratch.name)
        self.stop_requested = False
        self._manifest_tags: dict[str, str] = {}
        reason = plan.suite.allow_leakage
        self._common_tags = {"bench.allow_leakage": reason} if reason else {}
        self.owner = new_owner()
        self.poll_seconds = float(os.environ.get("BENCH_POLL_S", "5"))
        self.only: set[str] | None = None  # restrict to these unit keys (SLURM packs)
        self._heartbeat: Heartbeat | None = None
        self._context: tuple[str, torch.nn.Module, dict] | None = None
        self._counter = 0
        self._total = 0
        self._cell_runs: dict[str, str] = {}
        self._encoder_sha: dict[str, str] = {}
        self._store = StoreView(tracker)

    # ------------------------------------------------------------------ helpers
    def _manifest_tag(self, ref: str) -> dict[str, str]:
        """Write the part's manifest; return a tag with its sha256 (and the common tags)."""
        from bench.manifest import split_hash

        ds_name, part = parse_ref(ref)
        if ref not in self._manifest_tags:
            ds = self.plan.datasets[ds_name]
            ds.write_manifest(part, self.output / "manifests")
            self._manifest_tags[ref] = ds.manifest_hash(part)
            self._manifest_tags[f"split:{ds_name}"] = split_hash(ds)
        return {f"bench.manifest.{ref}": self._manifest_tags[ref],
                f"bench.split.{ds_name}": self._manifest_tags[f"split:{ds_name}"],
                **self._common_tags}

    def _lineage_tags(self, init: str, encoder_key: str | None) -> dict[str, str]:
        """Weights fingerprint of the root init and sha256 of the encoder a run starts from."""
        from bench.models.weights import sha256_file

        node = self.plan.inits[init]
        tags = {"bench.init_key": node.key, "bench.weights": node.fingerprint}
        if encoder_key is not None:
            path = self.output / "encoders" / f"{encoder_key}.pt"
            if path.exists():
                if encoder_key not in self._encoder_sha:
                    self._encoder_sha[encoder_key] = sha256_file(path)
                tags["bench.encoder_sha256"] = self._encoder_sha[encoder_key]
                tags["bench.encoder_key"] = encoder_key
        return tags

    def _encoder(self, key: str) -> torch.nn.Module:
        """Backbone for an init key or a finished stage key."""
        from bench.models.weights import build_init, load_into

        plan = self.plan
        for name, node in plan.inits.items():
            if node.key == key:
                spec = plan.suite.inits[name]
                return build_init(spec.arch, spec.weights, spec.seed)
        stage = plan.stage(key)
        root = plan.suite.inits[stage.init]
        from bench.models.registry import seeded_backbone

        backbone = seeded_backbone(root.arch, root.seed)
        local = self.output / "encoders" / f"{key}.pt"
        if not local.exists():
            rec = self.tracker.status_by_key("stage").get(key)
            if rec is None or rec.status != FINISHED:
                raise RuntimeError(f"stage {stage.display} has not finished; cannot evaluate it")
            local = self.tracker.artifact_path(rec.run_id, "encoder.pt", self._tmp / key)
        load_into(backbone, torch.load(local, map_location="cpu", weights_only=True),
                  f"of stage {stage.display}")
        return backbone

    def _claim(self, kind: str, key: str, name: str, tags: dict[str, str],
               parent: str | None = None, params: dict[str, str] | None = None) -> str | None:
        return self._claim_many([(ClaimRequest(kind, key, name, tags, parent), params or {})])[0]

    def _claim_many(self, units: list[tuple[ClaimRequest, dict[str, str]]]) -> list[str | None]:
        """Claim units together (one lock or one fence wait); hold and label the won ones."""
        run_ids = claim_many(self.tracker, self.owner, [u for u, _ in units])
        for run_id, (_, params) in zip(run_ids, units, strict=True):
            if run_id is not None:
                if self._heartbeat is not None:
                    self._heartbeat.hold(run_id)
                if params:
                    self.tracker.log_params(run_id, params)
        return run_ids

    def _end(self, run_id: str, status: str = FINISHED, reason: str | None = None) -> None:
        if self._heartbeat is not None:
            self._heartbeat.release(run_id)
        if reason is None:
            self.tracker.finish(run_id, status)
        else:
            self.tracker.fail(run_id, reason, status)

    def _step(self) -> str:
        self._counter += 1
        self.progress.advance()
        return f"[{self._counter}/{self._total}]"

    # ------------------------------------------------------------------ stages
    def run_stage(self, node: StageNode) -> bool:
        """Claim and train one stage, logging its encoder as the artifact ``encoder.pt``.
        Returns False when another process holds or has finished it."""
        from bench.ssl.methods import resolve_method
        from bench.ssl.pretrain import run_stage

        spec = node.spec
        method_cls = resolve_method(spec.method)
        tags = {"bench.stage": node.name, "bench.chain": node.label,
                "bench.parent_key": node.parent_key, "bench.data_hash": node.data_hash,
                "bench.device": str(self.device)}
        for ref in spec.data:
            tags.update(self._manifest_tag(ref))
        tags.update(self._lineage_tags(node.init, None))
        if node.replicate:
            tags["bench.replicate"] = node.replicate
        run_id = self._claim("stage", node.key, node.display, tags,
                             params=flatten(key_view(spec), "stage."))
        if run_id is None:
            return False
        self.say(f"{self._step()} stage {node.display} ({spec.method})")
        n_epochs = spec.warmup_epochs + spec.epochs
        self.progress.unit(f"stage {node.display}", n_epochs)
        try:
            first_ref = parse_ref(spec.data[0])[0]
            classes = self.plan.datasets[first_ref].classes
            data = self.images.union(spec.data, spec.repeat, spec.image_size,
                                     labelled=method_cls.needs_labels)
            backbone = self._encoder(node.parent_key)
            ckpt = self.output / "checkpoints" / f"{node.key}.pt"
            done = [0]

            def on_epoch(phase: str, epoch: int, loss: float) -> None:
                self.tracker.log_metrics(run_id, {f"{phase}_loss": loss}, step=epoch)
                done[0] += 1
                self.progress.epoch(f"stage {node.display} ({phase})", done[0], n_epochs, loss)
                if self.stop_requested:
                    raise StopRequested

            backbone, summary = run_stage(backbone, spec, method_cls, data,
                                          len(classes) if method_cls.needs_labels else None,
                                          self.device, ckpt, on_epoch)
            enc_dir = self.output / "encoders"
            enc_dir.mkdir(parents=True, exist_ok=True)
            path = enc_dir / f"{node.key}.pt"
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save(backbone.state_dict(), tmp)
            os.replace(tmp, path)
            encoder_bytes = path.read_bytes()
            self._encoder_sha[node.key] = hashlib.sha256(encoder_bytes).hexdigest()
            self.tracker.set_tags(run_id, {"bench.encoder_sha256": self._encoder_sha[node.key]})
            upload = self._tmp / node.key / "encoder.pt"
            upload.parent.mkdir(parents=True, exist_ok=True)
            upload.write_bytes(encoder_bytes)
            self.tracker.log_artifact(run_id, upload)
            self.tracker.log_metrics(run_id, summary)
            self._end(run_id)
            ckpt.unlink(missing_ok=True)
        except (KeyboardInterrupt, StopRequested):
            self._end(run_id, KILLED, "interrupted by the user (resumes from its last epoch "
                                      "checkpoint)")
            raise
        except BaseException as exc:
            self._end(run_id, FAILED, failure_reason(exc))
            raise
        return True

    # ------------------------------------------------------------------ cells
    def _cell_run(self, cell: Cell) -> str:
        """The cell's parent run: the oldest existing one, else a new one (created once even
        when several workers race: the later ones delete theirs)."""
        if cell.key in self._cell_runs:
            return self._cell_runs[cell.key]
        existing = [r for r in self.tracker.runs_for_key(cell.key) if r.kind == "cell"]
        if existing:
            self._cell_runs[cell.key] = existing[0].run_id
            return existing[0].run_id
        tags = {"bench.cell": cell.name, "bench.init": cell.init,
                "bench.chain": "+".join(cell.chain), "bench.protocol": cell.protocol,
                "bench.encoder_key": cell.encoder_key}
        if cell.replicate:
            tags["bench.replicate"] = cell.replicate
        for ref in (cell.spec.train, cell.spec.test):
            tags.update(self._manifest_tag(ref))
        run_id = self.tracker.start("cell", cell.key, cell.display,
                                    flatten(key_view(cell.spec), "protocol."), tags)
        first = next(r for r in self.tracker.runs_for_key(cell.key) if r.kind == "cell")
        if first.run_id != run_id:
            self.tracker.delete_run(run_id)
        self._cell_runs[cell.key] = first.run_id
        return first.run_id

    def _cell_context(self, cell: Cell) -> tuple[torch.nn.Module, dict]:
        """The cell's encoder and a copy of its weights (kept while the worker stays on it)."""
        if self._context is None or self._context[0] != cell.encoder_key:
            backbone0 = self._encoder(cell.encoder_key)
            state = {k: v.clone() for k, v in backbone0.state_dict().items()}
            self._context = (cell.encoder_key, backbone0, state)
        return self._context[1], self._context[2]

    def _trial_unit(self, trial: Trial, parent: str) -> tuple[ClaimRequest, dict[str, str]]:
        """A trial's claim (tags: cell, seeds, data manifests, lineage) and its params."""
        cell, spec = trial.cell, trial.cell.spec
        tags = {"bench.cell": cell.name, "bench.seed": str(trial.seed),
                "bench.device": str(self.device), "bench.cell_key": cell.key}
        tags.update({f"bench.seed.{k}": str(v) for k, v in trial.seeds.items()})
        if cell.replicate:
            tags["bench.replicate"] = cell.replicate
        for ref in (spec.train, spec.test):
            tags.update(self._manifest_tag(ref))
        tags.update(self._lineage_tags(cell.init, cell.stage_key))
        params = {"cell": cell.name, "seed": str(trial.seed), **flatten(key_view(spec),
                                                                        "protocol.")}
        name = f"{cell.display} seed={trial.seed}"
        return ClaimRequest("trial", trial.key, name, tags, parent), params

    def _finish_trial(self, trial: Trial, run_id: str, result, classes: list[str]) -> None:
        metrics = {f"test_{k}": v for k, v in result.metrics.items()
                   if not isinstance(v, list)}
        metrics["max_lr"] = result.max_lr
        self.tracker.log_metrics(run_id, metrics)
        for i, loss in enumerate(result.history):
            self.tracker.log_metrics(run_id, {"train_loss": loss}, step=i)
        if result.lr_curve is not None:
            self._log_curve(run_id, result.lr_curve)
        folder = self._tmp / trial.key
        folder.mkdir(parents=True, exist_ok=True)
        pred = folder / "predictions.npz"
        ds_name, part = parse_ref(trial.cell.spec.test)
        cases = self.plan.datasets[ds_name].part(part)  # the order the test images were served
        np.savez_compressed(pred, probs=result.probs.astype(np.float16),
                            pred=result.probs.argmax(1), labels=result.labels,
                            classes=np.array(classes), ids=np.array(cases["id"].astype(str).tolist()),
                            groups=np.array(cases["group"].astype(str).tolist()))
        self.tracker.log_artifact(run_id, pred)
        confusion = folder / "confusion.json"
        confusion.write_text(json.dumps({"classes": classes,
                                         "matrix": result.metrics.get("confusion", [])}))
        self.tracker.log_artifact(run_id, confusion)
        self._end(run_id)

    def _log_curve(self, run_id: str, curve: tuple[list[float], list[float]]) -> None:
        for i, (lr, loss) in enumerate(zip(*curve, strict=True)):
            self.tracker.log_metrics(run_id, {"lr_finder_lr": lr, "lr_finder_loss": loss}, i)

    def _search(self, cell: Cell, backbone0: torch.nn.Module, state: dict, seeds: dict[str, int],
                study: str, run_id: str) -> float:
        """The max lr of a cell (or of one trial) with the protocol's lr_finder or optuna."""
        from bench.train.lr_search import optuna_search
        from bench.train.trial import run_trial

        spec = cell.spec
        train = self.images.get(spec.train, spec.image_size)
        classes = self.plan.datasets[parse_ref(spec.train)[0]].classes

        def fresh() -> torch.nn.Module:
            backbone0.load_state_dict(state)
            return backbone0

        if spec.lr_search.method == "lr_finder":
            res = run_trial(fresh(), spec, train, None, classes, seeds, self.device,
                            search_only=True)
            if res.lr_curve is not None:
                self._log_curve(run_id, res.lr_curve)
            return res.max_lr

        def log(number: int, lr: float, value: float | None) -> None:
            metrics = {"optuna_lr": lr}
            if value is not None:
                metrics["optuna_val_accuracy"] = value
            self.tracker.log_metrics(run_id, metrics, step=number)

        self.say(f"  {cell.display}: optuna search of the max lr ({spec.lr_search.n_trials} "
                 f"candidates, validation split of the training part)")
        res = optuna_search(spec, fresh, train, classes, seeds, self.device,
                            self.output / "optuna", study, log)
        return res.lr

    @staticmethod
    def needs_cell_search(cell: Cell) -> bool:
        """Whether the cell's lr is searched once for the cell (before its trials)."""
        s = cell.spec.lr_search
        return s.method != "fixed" and s.per == "cell"

    def cell_lr(self, cell: Cell, view: _View) -> float | None:
        """The cell-level lr when it is known (from its search run, or an older cell run)."""
        rec = view.best.get(search_key(cell))
        if rec is not None and rec.status == FINISHED and "cell_max_lr" in rec.metrics:
            return float(rec.metrics["cell_max_lr"])
        legacy = view.best.get(cell.key)
        if legacy is not None and "cell_max_lr" in legacy.metrics:
            return float(legacy.metrics["cell_max_lr"])
        return None

    def run_search(self, cell: Cell) -> bool:
        """Claim and run a cell's lr search; log ``cell_max_lr`` on it and on the cell run."""
        parent = self._cell_run(cell)
        run_id = self._claim("search", search_key(cell), f"{cell.display} lr search",
                             {"bench.cell": cell.name, "bench.cell_key": cell.key}, parent)
        if run_id is None:
            return False
        self.progress.unit(f"{cell.display} lr search", 1)
        try:
            backbone0, state = self._cell_context(cell)
            sd = self.plan.suite.seeds
            seeds = trial_seeds(sd.base, sd.base, [])
            lr = self._search(cell, backbone0, state, seeds, f"cell-{cell.key[:16]}", run_id)
            self.tracker.log_metrics(run_id, {"cell_max_lr": lr})
            self.tracker.log_metrics(parent, {"cell_max_lr": lr})
            self._end(run_id)
        except (KeyboardInterrupt, StopRequested):
            self._end(run_id, KILLED, "interrupted by the user")
            raise
        except Exception as exc:
            self._end(run_id, FAILED, failure_reason(exc))
            self.say(f"  {cell.display}: lr search FAILED {failure_reason(exc)}")
            return True
        self.say(f"  {cell.display}: max lr {lr:.3g} (searched once for the cell)")
        return True

    def run_trials(self, cell: Cell, todo: list[Trial], cell_lr: float | None,
                   summary: RunSummary) -> bool:
        """Claim and run some of a cell's pending trials (as one HeadBank when exactly
        equivalent). Returns False when every one was taken by another process."""
        from bench.train.probe_bank import bank_eligible, run_probe_bank
        from bench.train.trial import run_trial

        spec = cell.spec
        classes = self.plan.datasets[parse_ref(spec.train)[0]].classes
        parent = self._cell_run(cell)
        bank = len(todo) > 1 and bank_eligible(spec, self.plan.suite.seeds.vary)
        if not bank:
            todo = todo[:1]
        run_ids = self._claim_many([self._trial_unit(t, parent) for t in todo])
        claimed = [(t, r) for t, r in zip(todo, run_ids, strict=True) if r is not None]
        if not claimed:
            return False
        try:
            backbone0, state = self._cell_context(cell)
            train = self.images.get(spec.train, spec.image_size)
            test = self.images.get(spec.test, spec.image_size)
        except (KeyboardInterrupt, StopRequested):
            for _, run_id in claimed:
                self._end(run_id, KILLED, "interrupted by the user")
            raise
        except Exception as exc:  # the encoder or the data could not be loaded
            for t, run_id in claimed:
                self._end(run_id, FAILED, failure_reason(exc))
                self._report(t, None, failure_reason(exc), summary)
            return True
        if bank:
            self.progress.unit(f"{cell.display} HeadBank ×{len(claimed)}",
                               spec.n_warmup + spec.epochs)
            try:
                backbone0.load_state_dict(state)
                lr = cell_lr if cell_lr is not None else spec.lr_search.lr
                results = run_probe_bank(backbone0, spec, train, test, classes,
                                         [t.seeds for t, _ in claimed], self.device, lr)
                for (t, run_id), res in zip(claimed, results, strict=True):
                    self._finish_trial(t, run_id, res, classes)
                    self._report(t, res.metrics, "", summary)
            except (KeyboardInterrupt, StopRequested):
                for _, run_id in claimed:
                    self._end(run_id, KILLED, "interrupted by the user")
                raise
            except Exception as exc:
                for t, run_id in claimed:
                    self._end(run_id, FAILED, failure_reason(exc))
                    self._report(t, None, failure_reason(exc), summary)
            return True
        (trial, run_id), = claimed
        total = spec.n_warmup + spec.epochs
        self.progress.unit(f"{cell.display} seed={trial.seed}", total)
        try:
            lr = cell_lr
            if lr is None and spec.lr_search.method == "optuna":
                lr = self._search(cell, backbone0, state, trial.seeds,
                                  f"trial-{trial.key[:16]}", run_id)
            backbone0.load_state_dict(state)
            done = [0]

            def on_epoch(phase: str, epoch: int, loss: float) -> None:
                self.tracker.log_metrics(run_id, {f"{phase}_loss": loss}, step=epoch)
                done[0] += 1
                self.progress.epoch(f"{cell.display} seed={trial.seed}", done[0], total, loss)
                if self.stop_requested:
                    raise StopRequested

            res = run_trial(backbone0, spec, train, test, classes, trial.seeds,
                            self.device, on_epoch, max_lr=lr)
            res.history = []  # already logged per epoch
            self._finish_trial(trial, run_id, res, classes)
            self._report(trial, res.metrics, "", summary)
        except (KeyboardInterrupt, StopRequested):
            self._end(run_id, KILLED, "interrupted by the user")
            raise
        except Exception as exc:
            self._end(run_id, FAILED, failure_reason(exc))
            self._report(trial, None, failure_reason(exc), summary)
        return True

    def _report(self, trial: Trial, metrics: dict | None, error: str,
                summary: RunSummary) -> None:
        name = f"{self._step()} {trial.cell.display} seed={trial.seed}"
        if metrics is None:
            summary.failed.append(f"{trial.cell.display} seed={trial.seed}: {error}")
            self.say(f"{name}: FAILED {error}")
        else:
            summary.trials_run += 1
            shown = ", ".join(f"{k} {metrics[k]:.3f}" for k in trial.cell.spec.metrics[:2])
            self.say(f"{name}: {shown}")

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
            with Heartbeat(self.tracker) as heartbeat:
                self._heartbeat = heartbeat
                return self._run(t0)
        except StopRequested:
            return RunSummary(interrupted=True, seconds=time.perf_counter() - t0)
        finally:
            self._heartbeat = None
            retire_owner(self.owner)
            self.progress.close()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def view(self, since_ms: int) -> _View:
        """Read the store; dead claims found on the way are marked KILLED."""
        records = self._store.refresh()
        if close_dead(self.tracker, records):
            records = self._store.refresh()
        return _View(best_by_key(records), since_ms)

    def prepare(self, summary: RunSummary | None = None) -> tuple[list[Trial], set[str], int]:
        """Close dead claims, find the pending trials and the stages they need, decode their
        data and run the leakage guard. Returns (pending trials, needed stage keys, start ms)."""
        summary = summary or RunSummary()
        plan, tracker = self.plan, self.tracker
        since_ms = int(time.time() * 1000)
        stale = close_dead(tracker, self._store.refresh(full=True))
        if stale:
            self.say(f"marked {stale} interrupted run(s) KILLED; their work will be redone")
        view = self.view(since_ms)
        pending = [t for t in plan.trials if not view.done(t.key) and self._mine(t.key)]
        summary.trials_skipped = len(plan.trials) - len(pending)
        done = {k for k in view.best if view.done(k)}
        needed = self._needed_stages(pending, done)
        if self.only is not None:  # a pack runs its own stages; its trials' stages are done
            needed = {s.key for s in plan.stages if s.key in self.only and s.key not in done}
        summary.stages_skipped = len(plan.stages) - len(needed)
        if pending or needed:
            self.guard(pending, needed)
        return pending, needed, since_ms

    def _run(self, t0: float) -> RunSummary:
        summary = RunSummary()
        pending, needed, since_ms = self.prepare(summary)
        self._total = len(needed) + len(pending)
        self.progress.set_total(self._total)
        given_up: set[str] = set()
        while True:
            if self.stop_requested:
                raise StopRequested
            view = self.view(since_ms)
            unit, waiting = self._next_unit(view, pending, needed, given_up, summary)
            if unit is None:
                if not waiting:
                    break
                time.sleep(self.poll_seconds)
                continue
            try:
                if unit.kind == "stage":
                    assert unit.stage is not None
                    if self.run_stage(unit.stage):
                        summary.stages_run += 1
                elif unit.kind == "search":
                    assert unit.cell is not None
                    self.run_search(unit.cell)
                else:
                    assert unit.cell is not None
                    self.run_trials(unit.cell, unit.trials, self.cell_lr(unit.cell, view),
                                    summary)
            except (KeyboardInterrupt, StopRequested):
                raise
            except Exception as exc:  # recorded on its run; what depends on it is given up
                what = (f"stage {unit.stage.display}" if unit.stage is not None
                        else f"cell {unit.cell.display if unit.cell else '?'}")
                summary.failed.append(f"{what}: {failure_reason(exc)}")
                self.say(f"  FAILED: {failure_reason(exc)}")
        self._finish_cells(self.view(since_ms))
        summary.seconds = time.perf_counter() - t0
        return summary

    def _mine(self, key: str) -> bool:
        return self.only is None or key in self.only

    def _give_up(self, keys: list[str], label: str, reason: str, given_up: set[str],
                 summary: RunSummary) -> None:
        for key in keys:
            if key not in given_up:
                given_up.add(key)
                summary.failed.append(f"{label}: {reason}")
                self._step()

    def _next_unit(self, view: _View, pending: list[Trial], needed: set[str],
                   given_up: set[str], summary: RunSummary) -> tuple[Unit | None, bool]:
        """The first ready, unheld unit in DAG order, and whether other work is still held by
        other workers (so that this one should wait rather than stop)."""
        waiting = False
        failed_stages: set[str] = set()
        for node in self.plan.stages:
            if node.key not in needed or view.done(node.key):
                continue
            if view.failed_now(node.key) or node.parent_key in failed_stages:
                failed_stages.add(node.key)
                if node.key not in given_up and not view.failed_now(node.key):
                    self._give_up([node.key], f"stage {node.display}", "its parent stage failed",
                                  given_up, summary)
                given_up.add(node.key)
                continue
            if view.busy(node.key) or (node.parent_key in needed
                                       and not view.done(node.parent_key)):
                waiting = True
                continue
            return Unit("stage", stage=node), waiting
        by_cell: dict[str, list[Trial]] = {}
        for t in pending:
            if not view.done(t.key) and t.key not in given_up:
                by_cell.setdefault(t.cell.key, []).append(t)
        for cell in self.plan.cells:
            trials = by_cell.get(cell.key)
            if not trials:
                continue
            if cell.stage_key is not None and not view.done(cell.stage_key):
                if (cell.stage_key in needed and cell.stage_key not in failed_stages) \
                        or view.busy(cell.stage_key):
                    waiting = True
                else:
                    reason = ("stage failed" if cell.stage_key in failed_stages
                              else "its stage has not finished")
                    for t in trials:
                        self._give_up([t.key], f"{cell.display} seed={t.seed}", reason,
                                      given_up, summary)
                continue
            if self.needs_cell_search(cell) and self.cell_lr(cell, view) is None:
                skey = search_key(cell)
                if view.failed_now(skey):
                    reason = view.best[skey].tags.get("bench.failure", "lr search failed")
                    for t in trials:
                        self._give_up([t.key], f"{cell.display} seed={t.seed}",
                                      f"lr search failed: {reason}", given_up, summary)
                elif view.busy(skey):
                    waiting = True
                else:
                    return Unit("search", cell=cell), waiting
                continue
            todo = []
            for t in trials:
                if view.busy(t.key):
                    waiting = True
                elif view.failed_now(t.key):
                    given_up.add(t.key)
                else:
                    todo.append(t)
            if todo:
                return Unit("trials", cell=cell, trials=todo), waiting
        return None, waiting

    def _finish_cells(self, view: _View) -> None:
        """Mark a cell run FINISHED once every trial of the cell has finished."""
        for cell in self.plan.cells:
            rec = view.best.get(cell.key)
            if rec is None or rec.kind != "cell" or rec.status == FINISHED:
                continue
            if all(view.done(t.key) for t in self.plan.trials_of(cell)):
                self.tracker.finish(rec.run_id)

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

    def _needed_stages(self, pending: list[Trial], done: set[str]) -> set[str]:
        """Unfinished stages that a pending trial depends on (directly or through parents)."""
        needed: set[str] = set()
        by_key = {s.key: s for s in self.plan.stages}
        for t in pending:
            key = t.cell.stage_key
            while key in by_key and key not in done:
                needed.add(key)
                key = by_key[key].parent_key
        return needed
