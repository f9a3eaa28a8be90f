"""What units leave behind and start from: encoders, predictions, LR curves, provenance tags.

Encoders are written to ``<output>/encoders/<key>.pt`` (atomically) and uploaded as the stage
run's ``encoder.pt``; a trial uploads ``predictions.npz`` (float16 probabilities, predictions,
labels, class names, case and group ids in the order the test images were served) and
``confusion.json``. Every run is tagged with the manifests of the data it reads and the lineage of
the encoder it starts from (root weights fingerprint, encoder key and sha256).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.config.names import parse_ref
from bench.plan import Plan, Trial
from bench.procs import write_text_atomic
from bench.track import FINISHED, DatasetEntry, Tag, Tracker
from bench.train.evaluate import TrialResult


@dataclass(frozen=True)
class Subset:
    """The labelled images a trial trains on when its protocol has ``label_fraction`` < 1.

    Attributes:
        ref: the training part. fraction: the protocol's label_fraction. seed: the trial's
            ``subset`` seed. rows: (n,) sorted rows of the part. path: its manifest CSV.
        sha256: of the manifest's text.
    """

    ref: str
    fraction: float
    seed: int
    rows: np.ndarray
    path: Path
    sha256: str

    @property
    def tags(self) -> dict[str, str]:
        return {Tag.SUBSET_PREFIX + self.ref: self.sha256,
                Tag.SUBSET_IMAGES: str(len(self.rows))}


class StagedEncoder:
    """An encoder written next to ``encoders/<key>.pt``, not yet in place."""

    def __init__(self, artifacts: Artifacts, key: str, tmp: Path, path: Path, sha: str):
        self._artifacts, self.key, self.tmp, self.path, self.sha = artifacts, key, tmp, path, sha

    def place(self) -> None:
        """Put it in place (atomically)."""
        os.replace(self.tmp, self.path)
        self._artifacts._encoder_sha[self.key] = self.sha

    def discard(self) -> None:
        """Remove it when it was not put in place."""
        self.tmp.unlink(missing_ok=True)


class Artifacts:
    """Reads and writes one suite's artifacts through its tracker."""

    def __init__(self, plan: Plan, tracker: Tracker, output: Path):
        self.plan = plan
        self.tracker = tracker
        self.output = output
        # scratch files on their way into the store; removed with this object (or at exit)
        self._scratch = tempfile.TemporaryDirectory(prefix=f"bench-{os.getpid()}-")
        self.tmp = Path(self._scratch.name)
        self._manifest_tags: dict[str, str] = {}
        self._manifest_files: dict[str, Path] = {}
        self._encoder_sha: dict[str, str] = {}
        reason = plan.suite.allow_leakage
        self._common_tags = {Tag.ALLOW_LEAKAGE: reason} if reason else {}

    def remove_leftovers(self) -> int:
        """Remove what killed processes of this host left: their scratch folders and
        half-written encoders (names carry the maker's pid); return how many went."""
        from bench.procs import remove_dead_leftovers

        n = remove_dead_leftovers(Path(tempfile.gettempdir()).glob("bench-*-*"),
                                  r"bench-(?P<pid>\d+)-.+")
        enc_dir = self.output / "encoders"
        if enc_dir.is_dir():
            n += remove_dead_leftovers(enc_dir.glob("*.tmp"), r".+\.(?P<pid>\d+)\.tmp")
        return n

    # ------------------------------------------------------------------ tags
    def manifest_tag(self, ref: str) -> dict[str, str]:
        """Write the part's manifest; return a tag with its sha256 (and the common tags)."""
        from bench.manifest import split_hash

        ds_name, part = parse_ref(ref)
        if ref not in self._manifest_tags:
            ds = self.plan.datasets[ds_name]
            self._manifest_files[ref] = ds.write_manifest(part, self.output / "manifests")
            self._manifest_tags[ref] = ds.manifest_hash(part)
            self._manifest_tags[f"split:{ds_name}"] = split_hash(ds)
        return {Tag.MANIFEST_PREFIX + ref: self._manifest_tags[ref],
                Tag.SPLIT_PREFIX + ds_name: self._manifest_tags[f"split:{ds_name}"],
                **self._common_tags}

    def log_datasets(self, run_id: str, refs: list[tuple[str, str]],
                     subset: Subset | None = None) -> None:
        """Log the parts a run reads (``(ref, context)`` pairs) as MLflow datasets: the
        manifest's sha256 as the digest, the manifest CSV as the source. With a ``subset``,
        its part is logged as the subset the run trains on (and the run tagged with it)."""
        entries = []
        for ref, context in refs:
            ds_name, part = parse_ref(ref)
            ds = self.plan.datasets[ds_name]
            rows = ds.part(part)
            self.manifest_tag(ref)  # written once per ref
            if subset is not None and ref == subset.ref:
                entries.append(DatasetEntry(
                    name=f"{ref}@{subset.fraction:g}", digest=subset.sha256, context=context,
                    source=str(subset.path.resolve()),
                    profile={"num_images": len(subset.rows), "num_classes": len(ds.classes)}))
                continue
            entries.append(DatasetEntry(
                name=ref, digest=self._manifest_tags[ref], context=context,
                source=str(self._manifest_files[ref].resolve()),
                profile={"num_images": len(rows), "num_classes": len(ds.classes)}))
        self.tracker.log_datasets(run_id, entries)
        if subset is not None:
            self.tracker.set_tags(run_id, subset.tags)

    def subset_manifest(self, trial: Trial) -> Subset:
        """The labelled subset a trial trains on (``label_fraction`` < 1, drawn from its
        ``subset`` seed), written as a manifest CSV (id, label, group) under
        ``manifests/subsets/``."""
        from bench.data.subsets import part_subset

        spec = trial.cell.spec
        ds_name, part = parse_ref(spec.train)
        ds = self.plan.datasets[ds_name]
        seed = trial.seeds["subset"]
        rows = part_subset(ds, part, spec.label_fraction, seed)
        chosen = ds.part(part).iloc[rows][["id", "label", "group"]]
        text = chosen.to_csv(index=False)
        sha = hashlib.sha256(text.encode()).hexdigest()
        folder = self.output / "manifests" / "subsets"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{ds_name}_{part}@{spec.label_fraction:g}_{sha[:16]}.csv"
        if not path.exists():
            write_text_atomic(path, text)
        return Subset(ref=spec.train, fraction=spec.label_fraction, seed=seed, rows=rows,
                      path=path, sha256=sha)

    def lineage_tags(self, init: str, encoder_key: str | None) -> dict[str, str]:
        """Weights fingerprint of the root init and sha256 of the encoder a run starts from."""
        from bench.models.weights import sha256_file

        node = self.plan.inits[init]
        tags = {Tag.INIT_KEY: node.key, Tag.WEIGHTS: node.fingerprint}
        if encoder_key is not None:
            path = self.output / "encoders" / f"{encoder_key}.pt"
            if path.exists():
                if encoder_key not in self._encoder_sha:
                    self._encoder_sha[encoder_key] = sha256_file(path)
                tags[Tag.ENCODER_SHA] = self._encoder_sha[encoder_key]
                tags[Tag.ENCODER_KEY] = encoder_key
        return tags

    # ------------------------------------------------------------------ encoders
    def encoder(self, key: str) -> torch.nn.Module:
        """Backbone for an init key or a finished stage key."""
        from bench.models.registry import seeded_backbone
        from bench.models.weights import build_init, load_into

        plan = self.plan
        for name, node in plan.inits.items():
            if node.key == key:
                spec = plan.suite.inits[name]
                return build_init(spec.arch, spec.weights, spec.seed)
        stage = plan.stage(key)
        root = plan.suite.inits[stage.init]
        backbone = seeded_backbone(root.arch, root.seed)
        local = self.output / "encoders" / f"{key}.pt"
        if not local.exists():
            rec = self.tracker.status_by_key("stage").get(key)
            if rec is None or rec.status != FINISHED:
                raise RuntimeError(f"stage {stage.display} has not finished; cannot evaluate it")
            local = self.tracker.artifact_path(rec.run_id, "encoder.pt", self.tmp / key)
        load_into(backbone, torch.load(local, map_location="cpu", weights_only=True),
                  f"of stage {stage.display}")
        return backbone

    def save_encoder(self, key: str, backbone: torch.nn.Module, run_id: str) -> StagedEncoder:
        """Write the encoder beside its final place, tag its sha256 and upload it as
        ``encoder.pt`` of its run; the caller puts it in place (under its fence) or discards it."""
        enc_dir = self.output / "encoders"
        enc_dir.mkdir(parents=True, exist_ok=True)
        path = enc_dir / f"{key}.pt"
        buffer = io.BytesIO()  # the zip records are then named alike in every run: the same
        torch.save(backbone.state_dict(), buffer)  # weights give the same bytes and sha256
        encoder_bytes = buffer.getvalue()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(encoder_bytes)
        sha = hashlib.sha256(encoder_bytes).hexdigest()
        self.tracker.set_tags(run_id, {Tag.ENCODER_SHA: sha})
        upload = self.tmp / key / "encoder.pt"
        upload.parent.mkdir(parents=True, exist_ok=True)
        upload.write_bytes(encoder_bytes)
        self.tracker.log_artifact(run_id, upload)
        return StagedEncoder(self, key, tmp, path, sha)

    # ------------------------------------------------------------------ trials
    def log_curve(self, run_id: str, curve: tuple[list[float], list[float]]) -> None:
        """The LR finder's (lr, loss) curve as two stepped metrics."""
        lrs, losses = curve
        assert len(lrs) == len(losses)
        self.tracker.log_series(run_id, {"lr_finder_lr": lrs, "lr_finder_loss": losses})

    def log_trial(self, trial: Trial, run_id: str, result: TrialResult,
                  classes: list[str]) -> None:
        """A trial's test metrics, its loss history, LR curve, predictions and confusion."""
        metrics = {f"test_{k}": v for k, v in result.metrics.items()
                   if not isinstance(v, list)}
        metrics["max_lr"] = result.max_lr
        self.tracker.log_metrics(run_id, metrics)
        self.tracker.log_series(run_id, {"train_loss": result.history})
        if result.lr_curve is not None:
            self.log_curve(run_id, result.lr_curve)
        folder = self.tmp / trial.key
        folder.mkdir(parents=True, exist_ok=True)
        pred = folder / "predictions.npz"
        ds_name, part = parse_ref(trial.cell.spec.test)
        cases = self.plan.datasets[ds_name].part(part)  # the order the test images were served
        np.savez_compressed(pred, probs=result.probs.astype(np.float16),
                            pred=result.probs.argmax(1), labels=result.labels,
                            classes=np.array(classes),
                            ids=np.array(cases["id"].astype(str).tolist()),
                            groups=np.array(cases["group"].astype(str).tolist()))
        self.tracker.log_artifact(run_id, pred)
        confusion = folder / "confusion.json"
        confusion.write_text(json.dumps({"classes": classes,
                                         "matrix": result.metrics.get("confusion", [])}))
        self.tracker.log_artifact(run_id, confusion)
