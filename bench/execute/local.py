"""The local executor: run a plan's unfinished stages and trials in this process, in DAG order.

Resume semantics: a stage or trial whose key has a FINISHED run is skipped; FAILED or KILLED ones
are run again; RUNNING runs left by a killed process are marked KILLED first (one process per
suite). A failing trial is recorded FAILED with its reason and the suite goes on; Ctrl-C marks the
current run KILLED and stops (a stage resumes from its last epoch checkpoint next time).
"""

from __future__ import annotations

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

from bench.data.store import ImageStore
from bench.errors import BenchError
from bench.plan import Cell, Plan, StageNode, Trial, key_view, parse_ref
from bench.seeds import trial_seeds
from bench.track import FINISHED, KILLED, Tracker, flatten

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


class LocalExecutor:
    """Runs a plan against a tracker."""

    def __init__(self, plan: Plan, tracker: Tracker, output: Path,
                 progress: Callable[[str], None] | None = None):
        self.plan = plan
        self.tracker = tracker
        self.output = output
        self.say = progress or (lambda msg: log.info(msg))
        suite = plan.suite
        self.device = pick_device(suite.device)
        if suite.threads:
            torch.set_num_threads(suite.threads)
        self.images = ImageStore(plan.datasets, cache_dir(output), pin=self.device.type == "cuda",
                                 say=self.say)
        self._tmp = Path(tempfile.mkdtemp(prefix="bench-"))
        self.stop_requested = False
        self._manifest_tags: dict[str, str] = {}
        reason = plan.suite.allow_leakage
        self._common_tags = {"bench.allow_leakage": reason} if reason else {}

    # ------------------------------------------------------------------ helpers
    def _manifest_tag(self, ref: str) -> dict[str, str]:
        """Write the part's manifest; return a tag with its sha256 (and the common tags)."""
        if ref not in self._manifest_tags:
            ds_name, part = parse_ref(ref)
            ds = self.plan.datasets[ds_name]
            ds.write_manifest(part, self.output / "manifests")
            self._manifest_tags[ref] = ds.manifest_hash(part)
        return {f"bench.manifest.{ref}": self._manifest_tags[ref], **self._common_tags}

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
                raise RuntimeError(f"stage {stage.label} has not finished; cannot evaluate it")
            local = self.tracker.artifact_path(rec.run_id, "encoder.pt", self._tmp / key)
        load_into(backbone, torch.load(local, map_location="cpu", weights_only=True),
                  f"of stage {stage.label}")
        return backbone

    # ------------------------------------------------------------------ stages
    def run_stage(self, node: StageNode) -> None:
        """Train one stage and log its encoder as the artifact ``encoder.pt``."""
        from bench.ssl.methods import resolve_method
        from bench.ssl.pretrain import run_stage

        spec = node.spec
        method_cls = resolve_method(spec.method)
        tags = {"bench.stage": node.name, "bench.chain": node.label,
                "bench.parent_key": node.parent_key, "bench.data_hash": node.data_hash,
                "bench.device": str(self.device)}
        for ref in spec.data:
            tags.update(self._manifest_tag(ref))
        run_id = self.tracker.start("stage", node.key, node.label,
                                    flatten(key_view(spec), "stage."), tags)
        try:
            first_ref = parse_ref(spec.data[0])[0]
            classes = self.plan.datasets[first_ref].classes
            data = self.images.union(spec.data, spec.repeat, spec.image_size,
                                     labelled=method_cls.needs_labels)
            backbone = self._encoder(node.parent_key)
            ckpt = self.output / "checkpoints" / f"{node.key}.pt"

            def on_epoch(phase: str, epoch: int, loss: float) -> None:
                self.tracker.log_metrics(run_id, {f"{phase}_loss": loss}, step=epoch)
                self.say(f"  stage {node.label}: epoch {epoch + 1}/"
                         f"{spec.warmup_epochs + spec.epochs} ({phase}) loss {loss:.4f}")
                if self.stop_requested:
                    raise StopRequested

            backbone, summary = run_stage(backbone, spec, method_cls, data,
                                          len(classes) if method_cls.needs_labels else None,
                                          self.device, ckpt, on_epoch)
            enc_dir = self.output / "encoders"
            enc_dir.mkdir(parents=True, exist_ok=True)
            path = enc_dir / f"{node.key}.pt"
            torch.save(backbone.state_dict(), path.with_suffix(".tmp"))
            path.with_suffix(".tmp").rename(path)
            upload = self._tmp / node.key / "encoder.pt"
            upload.parent.mkdir(parents=True, exist_ok=True)
            upload.write_bytes(path.read_bytes())
            self.tracker.log_artifact(run_id, upload)
            self.tracker.log_metrics(run_id, summary)
            self.tracker.finish(run_id)
            ckpt.unlink(missing_ok=True)
        except (KeyboardInterrupt, StopRequested):
            self.tracker.fail(run_id, "interrupted by the user (resumes from its last epoch "
                                      "checkpoint)", KILLED)
            raise
        except BaseException as exc:
            self.tracker.fail(run_id, f"{type(exc).__name__}: {exc}")
            raise

    # ------------------------------------------------------------------ trials
    def _cell_run(self, cell: Cell, existing: dict[str, str]) -> str:
        """The cell's parent run: the existing one, or a new one."""
        if cell.key in existing:
            return existing[cell.key]
        tags = {"bench.cell": cell.name, "bench.init": cell.init,
                "bench.chain": "+".join(cell.chain), "bench.protocol": cell.protocol,
                "bench.encoder_key": cell.encoder_key}
        for ref in (cell.spec.train, cell.spec.test):
            tags.update(self._manifest_tag(ref))
        run_id = self.tracker.start("cell", cell.key, cell.name,
                                    flatten(key_view(cell.spec), "protocol."), tags)
        existing[cell.key] = run_id
        return run_id

    def _start_trial(self, trial: Trial, parent: str) -> str:
        cell, spec = trial.cell, trial.cell.spec
        tags = {"bench.cell": cell.name, "bench.seed": str(trial.seed),
                "bench.device": str(self.device), "bench.cell_key": cell.key}
        tags.update({f"bench.seed.{k}": str(v) for k, v in trial.seeds.items()})
        for ref in (spec.train, spec.test):
            tags.update(self._manifest_tag(ref))
        params = {"cell": cell.name, "seed": str(trial.seed), **flatten(key_view(spec),
                                                                        "protocol.")}
        return self.tracker.start("trial", trial.key, f"{cell.name} seed={trial.seed}",
                                  params, tags, parent=parent)

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
        np.savez_compressed(pred, probs=result.probs.astype(np.float16),
                            pred=result.probs.argmax(1), labels=result.labels,
                            classes=np.array(classes))
        self.tracker.log_artifact(run_id, pred)
        confusion = folder / "confusion.json"
        confusion.write_text(json.dumps({"classes": classes,
                                         "matrix": result.metrics.get("confusion", [])}))
        self.tracker.log_artifact(run_id, confusion)
        self.tracker.finish(run_id)

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

        self.say(f"  {cell.name}: optuna search of the max lr ({spec.lr_search.n_trials} "
                 f"candidates, validation split of the training part)")
        res = optuna_search(spec, fresh, train, classes, seeds, self.device,
                            self.output / "optuna", study, log)
        return res.lr

    def _cell_lr(self, cell: Cell, parent: str, backbone0: torch.nn.Module,
                 state: dict) -> float | None:
        """A cell-level lr (searched once, kept on the cell run), or None."""
        s = cell.spec.lr_search
        if s.method == "fixed" or s.per != "cell":
            return None
        known = self.tracker.run_metrics(parent).get("cell_max_lr")
        if known is not None:
            return float(known)
        sd = self.plan.suite.seeds
        seeds = trial_seeds(sd.base, sd.base, [])
        lr = self._search(cell, backbone0, state, seeds, f"cell-{cell.key[:16]}", parent)
        self.tracker.log_metrics(parent, {"cell_max_lr": lr})
        self.say(f"  {cell.name}: max lr {lr:.3g} (searched once for the cell)")
        return lr

    def run_cell(self, cell: Cell, todo: list[Trial], parent: str,
                 report: Callable[[Trial, dict | None, str], None]) -> bool:
        """Run a cell's pending trials (as one HeadBank when exactly equivalent)."""
        from bench.train.probe_bank import bank_eligible, run_probe_bank
        from bench.train.trial import run_trial

        spec = cell.spec
        classes = self.plan.datasets[parse_ref(spec.train)[0]].classes
        backbone0 = self._encoder(cell.encoder_key)
        state = {k: v.clone() for k, v in backbone0.state_dict().items()}
        cell_lr = self._cell_lr(cell, parent, backbone0, state)
        train = self.images.get(spec.train, spec.image_size)
        test = self.images.get(spec.test, spec.image_size)
        ok = True
        if len(todo) > 1 and bank_eligible(spec, self.plan.suite.seeds.vary):
            runs = [self._start_trial(t, parent) for t in todo]
            try:
                backbone0.load_state_dict(state)
                lr = cell_lr if cell_lr is not None else spec.lr_search.lr
                results = run_probe_bank(backbone0, spec, train, test, classes,
                                         [t.seeds for t in todo], self.device, lr)
                for t, run_id, res in zip(todo, runs, results, strict=True):
                    self._finish_trial(t, run_id, res, classes)
                    report(t, res.metrics, "")
            except (KeyboardInterrupt, StopRequested):
                for run_id in runs:
                    self.tracker.fail(run_id, "interrupted by the user", KILLED)
                raise
            except Exception as exc:
                for t, run_id in zip(todo, runs, strict=True):
                    self.tracker.fail(run_id, f"{type(exc).__name__}: {exc}")
                    report(t, None, f"{type(exc).__name__}: {exc}")
                return False
            return True
        for trial in todo:
            if self.stop_requested:
                raise StopRequested
            run_id = self._start_trial(trial, parent)
            try:
                lr = cell_lr
                if lr is None and spec.lr_search.method == "optuna":
                    lr = self._search(cell, backbone0, state, trial.seeds,
                                      f"trial-{trial.key[:16]}", run_id)
                backbone0.load_state_dict(state)

                def on_epoch(phase: str, epoch: int, loss: float, run_id: str = run_id) -> None:
                    self.tracker.log_metrics(run_id, {f"{phase}_loss": loss}, step=epoch)
                    if self.stop_requested:
                        raise StopRequested

                res = run_trial(backbone0, spec, train, test, classes, trial.seeds,
                                self.device, on_epoch, max_lr=lr)
                res.history = []  # already logged per epoch
                self._finish_trial(trial, run_id, res, classes)
                report(trial, res.metrics, "")
            except (KeyboardInterrupt, StopRequested):
                self.tracker.fail(run_id, "interrupted by the user", KILLED)
                raise
            except Exception as exc:
                self.tracker.fail(run_id, f"{type(exc).__name__}: {exc}")
                report(trial, None, f"{type(exc).__name__}: {exc}")
                ok = False
        return ok

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
            return self._run(t0)
        except StopRequested:
            summary = RunSummary(interrupted=True, seconds=time.perf_counter() - t0)
            return summary
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _run(self, t0: float) -> RunSummary:
        summary = RunSummary()
        plan, tracker = self.plan, self.tracker
        stale = tracker.close_stale(tracker.runs())
        if stale:
            self.say(f"marked {stale} interrupted run(s) KILLED; their work will be redone")
        done = {k for k, r in tracker.status_by_key().items() if r.status == FINISHED}
        pending = [t for t in plan.trials if t.key not in done]
        summary.trials_skipped = len(plan.trials) - len(pending)
        needed = self._needed_stages(pending, done)
        summary.stages_skipped = len(plan.stages) - len(needed)
        if pending:
            self.guard(pending, needed)
        total = len(needed) + len(pending)
        step = 0
        failed_stages: set[str] = set()
        for node in plan.stages:
            if node.key not in needed:
                continue
            step += 1
            if node.parent_key in failed_stages:
                failed_stages.add(node.key)
                summary.failed.append(f"stage {node.label}: its parent stage failed")
                continue
            self.say(f"[{step}/{total}] stage {node.label} ({node.spec.method})")
            if self.stop_requested:
                raise StopRequested
            try:
                self.run_stage(node)
                summary.stages_run += 1
            except (KeyboardInterrupt, StopRequested):
                raise
            except Exception as exc:
                failed_stages.add(node.key)
                summary.failed.append(f"stage {node.label}: {type(exc).__name__}: {exc}")
                self.say(f"  FAILED: {type(exc).__name__}: {exc}")
        cell_runs = {k: r.run_id for k, r in tracker.status_by_key("cell").items()}
        counter = [step]

        def report(trial: Trial, metrics: dict | None, error: str) -> None:
            counter[0] += 1
            name = f"[{counter[0]}/{total}] {trial.cell.name} seed={trial.seed}"
            if metrics is None:
                summary.failed.append(f"{trial.cell.name} seed={trial.seed}: {error}")
                self.say(f"{name}: FAILED {error}")
            else:
                summary.trials_run += 1
                shown = ", ".join(f"{k} {metrics[k]:.3f}" for k in trial.cell.spec.metrics[:2])
                self.say(f"{name}: {shown}")

        for cell in plan.cells:
            todo = [t for t in pending if t.cell.key == cell.key]
            if not todo:
                continue
            if cell.stage_key in failed_stages:
                summary.failed += [f"{cell.name} seed={t.seed}: stage failed" for t in todo]
                counter[0] += len(todo)
                continue
            parent = self._cell_run(cell, cell_runs)
            try:
                all_ok = self.run_cell(cell, todo, parent, report)
            except (KeyboardInterrupt, StopRequested):
                raise
            except Exception as exc:  # the cell could not start (encoder, lr search)
                for t in todo:
                    report(t, None, f"{type(exc).__name__}: {exc}")
                all_ok = False
            if all_ok:
                tracker.finish(parent)
        summary.seconds = time.perf_counter() - t0
        return summary

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
