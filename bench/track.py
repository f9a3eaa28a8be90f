"""MLflow tracking (with :mod:`bench.mlflow_store`, the only modules that import mlflow).

Layout: one experiment per suite; a run per pre-training stage (tag ``bench.kind=stage``), a parent
run per cell (``bench.kind=cell``) and a child run per trial (``bench.kind=trial``, nested through
``mlflow.parentRunId``). Every run carries its content key as ``bench.key``; resume asks the store
which keys have a FINISHED run. Embedded default: SQLite ``<output>/mlflow.db`` with artifacts under
``<output>/artifacts``; any tracking URI (e.g. ``http://host:5000``) is accepted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import subprocess
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from bench.mlflow_store import (
    Retrying,
    check_reachable,
    create_sqlite_store,
    opening_error,
    sqlite_path,
    store_lock,
)

FINISHED, FAILED, KILLED, RUNNING = "FINISHED", "FAILED", "KILLED", "RUNNING"


_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


def metric_name(text: str) -> str:
    """``text`` as an MLflow metric name: every character MLflow refuses (anything but letters,
    digits, ``_ - . /`` and space) becomes ``_``. Reports show the original text; the plan
    refuses two classes whose names would collide."""
    return _UNSAFE.sub("_", text)


class Tag:
    """The names of bench's MLflow tags (every module writes and reads them through these)."""

    KIND = "bench.kind"                 # stage | cell | search | trial
    KEY = "bench.key"                   # the unit's content key
    FAILURE = "bench.failure"           # why a run FAILED or was KILLED
    OWNER = "bench.owner"               # the claimant (lease holder) of a RUNNING run
    LEASE = "bench.lease"               # <claims store id>:<lease generation> of the claim
    CLAIMS = "bench.claims"             # the claims store (URI without password)
    NUMERICS = "bench.numerics"         # device, CPU threads, determinism flags of the run
    CELL = "bench.cell"
    CELL_KEY = "bench.cell_key"
    SEED = "bench.seed"
    SEED_PREFIX = "bench.seed."         # + source: the derived seed of one source
    REPLICATE = "bench.replicate"
    STAGE = "bench.stage"
    CHAIN = "bench.chain"
    INIT = "bench.init"
    PROTOCOL = "bench.protocol"
    PARENT_KEY = "bench.parent_key"
    DATA_HASH = "bench.data_hash"
    DEVICE = "bench.device"
    INIT_KEY = "bench.init_key"
    WEIGHTS = "bench.weights"           # the root init's weights fingerprint
    ENCODER_KEY = "bench.encoder_key"
    ENCODER_SHA = "bench.encoder_sha256"
    ALLOW_LEAKAGE = "bench.allow_leakage"
    MANIFEST_PREFIX = "bench.manifest."  # + data ref: sha256 of the part's manifest
    SUBSET_PREFIX = "bench.subset."  # + data ref: sha256 of the labelled subset's manifest
    SUBSET_IMAGES = "bench.subset_images"  # images in that subset
    SPLIT_PREFIX = "bench.split."        # + dataset: sha256 of its whole split


def default_tracking_uri(output: Path) -> str:
    """``sqlite:///<abs output>/mlflow.db``."""
    return f"sqlite:///{(output / 'mlflow.db').resolve()}"


def _quiet() -> None:
    """Keep MLflow's own INFO chatter (database migrations, …) off the terminal."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def best_by_key(records: Iterable[RunRecord]) -> dict[str, RunRecord]:
    """Best run per key among ``records`` (oldest first): a FINISHED one if any, else the
    latest."""
    best: dict[str, RunRecord] = {}
    for r in records:
        cur = best.get(r.key)
        if cur is None or cur.status != FINISHED:
            best[r.key] = r
    return best


@dataclass(frozen=True)
class RunRecord:
    """What resume and reports need to know about a run."""

    run_id: str
    key: str
    kind: str
    status: str
    tags: Mapping[str, str]
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    start_time: int
    end_time: int | None
    artifact_uri: str = ""


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset a run reads: ``name`` (``target:train``), the digest of its manifest, the
    manifest file, its context (``training``, ``test``, ``pretraining``) and a profile."""

    name: str
    digest: str
    source: str
    context: str
    profile: Mapping[str, int]


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config → ``{'a.b.c': 'value'}`` (lists JSON-ish)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, name + "."))
        else:
            out[name] = str(v)[:6000]
    return out


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (some containers)
        return "unknown"


@cache
def environment_tags() -> dict[str, str]:
    """Git commit and dirty flag of the working directory, package versions, host."""
    import torch

    import bench

    tags = {
        "mlflow.user": _user(),             # the UI's "Created by"
        "mlflow.source.type": "LOCAL",
        "bench.version": bench.__version__,
        "bench.torch": torch.__version__,
        "bench.python": platform.python_version(),
        "bench.host": platform.node(),
    }
    for pkg in ("torchvision", "kornia", "mlflow", "numpy"):
        try:
            from importlib.metadata import version

            tags[f"bench.{pkg}"] = version(pkg)
        except Exception:  # a missing optional package is simply not recorded
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                               timeout=5, check=True).stdout.strip()
        tags["bench.git_commit"] = commit
        tags["mlflow.source.git.commit"] = commit  # the UI's "Git commit"
        tags["bench.git_dirty"] = str(bool(dirty)).lower()
        if dirty:  # what the uncommitted changes were, as a hash (the diff itself stays local)
            diff = subprocess.run(["git", "diff", "HEAD"], capture_output=True, timeout=10,
                                  check=True).stdout
            tags["bench.git_diff_sha256"] = hashlib.sha256(diff + dirty.encode()).hexdigest()
    except (OSError, subprocess.SubprocessError):
        tags["bench.git_commit"] = "unknown"
    tags["bench.cuda"] = str(torch.version.cuda)
    tags["bench.cudnn"] = str(torch.backends.cudnn.version()) if torch.cuda.is_available() \
        else "none"
    tags["bench.deterministic_algorithms"] = str(torch.are_deterministic_algorithms_enabled())
    tags["bench.cudnn_deterministic"] = str(torch.backends.cudnn.deterministic)
    tags["bench.cudnn_benchmark"] = str(torch.backends.cudnn.benchmark)
    return tags


class Tracker:
    """A suite's experiment in an MLflow store."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path | None = None,
                 description: str | None = None, source: str = "bench"):
        """``description``: the experiment's description in the UI (the suite's); ``source``:
        the runs' "Source" (``mlflow.source.name``, e.g. ``bench run suites/demo.yaml``)."""
        _quiet()
        self.source = source
        from mlflow.tracking import MlflowClient

        _quiet()
        self.uri = tracking_uri
        # processes starting together create the store once
        check_reachable(tracking_uri)
        with store_lock(tracking_uri) or nullcontext():
            if (db := sqlite_path(tracking_uri)) is not None:
                create_sqlite_store(db)
            try:
                self.client = Retrying(MlflowClient(tracking_uri=tracking_uri), tracking_uri)
                self._open_experiment(experiment, artifact_root)
                if description and self.client.get_experiment(self.experiment_id).tags.get(
                        "mlflow.note.content") != description:
                    self.client.set_experiment_tag(self.experiment_id, "mlflow.note.content",
                                                   description)
            except Exception as exc:
                known = opening_error(tracking_uri, exc)
                if known is None:
                    raise
                raise known from exc

    def _open_experiment(self, experiment: str, artifact_root: Path | None) -> None:
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            location = artifact_root.resolve().as_uri() if artifact_root else None
            try:
                self.experiment_id = self.client.create_experiment(
                    experiment, artifact_location=location,
                    # the MLflow UI then opens on the runs table, not the GenAI overview
                    tags={"mlflow.experimentKind": "custom_model_development"})
            except Exception:  # created concurrently by another process
                exp = self.client.get_experiment_by_name(experiment)
                if exp is None:
                    raise
                self.experiment_id = exp.experiment_id
        else:
            self.experiment_id = exp.experiment_id

    # ---------------------------------------------------------------- queries
    def runs(self, kind: str | None = None, key: str | None = None, status: str | None = None,
             ended_since: int | None = None, exclude: Collection[str] = ()) -> list[RunRecord]:
        """Every bench run of the experiment, oldest first — optionally only one kind, one key,
        one status, or those that ended at or after ``ended_since`` (ms); never the runs whose
        ids are in ``exclude``. Deleted runs (claims that lost) are not listed."""
        filt = "tags.`bench.key` != ''"
        if kind:
            filt = f"tags.`bench.kind` = '{kind}'"
        if key:
            filt = f"tags.`bench.key` = '{key}'"
        if status:
            filt += f" and attributes.status = '{status}'"
        if ended_since is not None:
            filt += f" and attributes.end_time >= {int(ended_since)}"
        if exclude:
            filt += f" and attributes.run_id NOT IN ({', '.join(map(repr, sorted(exclude)))})"
        out: list[RunRecord] = []
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string=filt,
                                           max_results=5000, page_token=token,
                                           order_by=["attributes.start_time ASC"])
            for r in page:
                out.append(RunRecord(
                    run_id=r.info.run_id, key=r.data.tags.get(Tag.KEY, ""),
                    kind=r.data.tags.get(Tag.KIND, ""), status=r.info.status,
                    tags=r.data.tags, params=r.data.params, metrics=r.data.metrics,
                    start_time=r.info.start_time, end_time=r.info.end_time,
                    artifact_uri=r.info.artifact_uri or "",
                ))
            token = page.token
            if not token:
                return out

    def runs_for_key(self, key: str) -> list[RunRecord]:
        """Every run of one content key, oldest first."""
        return self.runs(key=key)

    def status_by_key(self, kind: str | None = None) -> dict[str, RunRecord]:
        """Best run per key: a FINISHED one if any, else the latest."""
        return best_by_key(self.runs(kind))

    # ---------------------------------------------------------------- writing
    def start(self, kind: str, key: str, name: str, params: Mapping[str, str] | None = None,
              tags: Mapping[str, str] | None = None, parent: str | None = None,
              start_time: int | None = None) -> str:
        """Create a RUNNING run (``start_time`` in ms, default now); return its id."""
        all_tags = {Tag.KIND: kind, Tag.KEY: key, **environment_tags(),
                    "mlflow.source.name": self.source, **(tags or {})}
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags,
                                     start_time=start_time)
        if params:
            self.log_params(run.info.run_id, params)
        return run.info.run_id

    def status(self, run_id: str) -> str:
        """The run's status as the store has it now."""
        return str(self.client.get_run(run_id).info.status)

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Log params in batches of 100."""
        from mlflow.entities import Param

        items = [Param(k[:250], str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i:i + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log several metrics at one step (NaN values are skipped)."""
        self.log_points(run_id, [(k, v, step) for k, v in metrics.items()])

    def log_series(self, run_id: str, series: Mapping[str, Sequence[float]]) -> None:
        """Stepped metrics (a loss per epoch, an LR-finder curve): value i at step i."""
        self.log_points(run_id, [(k, v, i) for k, vs in series.items() for i, v in enumerate(vs)])

    def log_points(self, run_id: str, points: Iterable[tuple[str, float, int]]) -> None:
        """Metric values ``(name, value, step)``, 1,000 a call (NaN values are skipped)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(metric_name(k), float(v), now, step) for k, v, step in points if v == v]
        for i in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[i:i + 1000])

    def log_datasets(self, run_id: str, datasets: Iterable[DatasetEntry]) -> None:
        """The data a run reads, as MLflow datasets (the run page's "Datasets used").

        The store keeps one row per (experiment, name, digest) and MLflow inserts it after
        looking for it, so two runs logging the same part at once can collide: the loser tries
        again (it then finds the row). Datasets are for people to read; a run never fails for
        them (after 3 tries the run goes on without, with a warning)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = [DatasetInput(
            Dataset(name=d.name, digest=d.digest[:36], source_type="local",
                    source=json.dumps({"uri": d.source}), profile=json.dumps(d.profile)),
            tags=[InputTag("mlflow.data.context", d.context)]) for d in datasets]
        for attempt in range(3):
            try:
                self.client.log_inputs(run_id, datasets=inputs)
                return
            except Exception as exc:  # the unique row, inserted by another run meanwhile
                if attempt == 2:
                    logging.getLogger(__name__).warning(
                        "run %s: its datasets were not logged (%s)", run_id, exc)
                time.sleep(0.2 * (attempt + 1))

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """Latest value of every metric of a run."""
        return dict(self.client.get_run(run_id).data.metrics)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set tags on a run."""
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_artifact(self, run_id: str, path: Path, folder: str | None = None) -> None:
        """Copy a local file into the run's artifacts."""
        self.client.log_artifact(run_id, str(path), folder)

    @staticmethod
    def local_artifact(record: RunRecord, name: str) -> Path | None:
        """The artifact file itself when the run's artifacts are on a local file system (no
        copy), else None."""
        uri = record.artifact_uri
        if not uri.startswith("file:"):
            return None
        from urllib.parse import unquote, urlparse

        path = Path(unquote(urlparse(uri).path)) / name
        return path if path.is_file() else None

    def artifact_path(self, run_id: str, name: str, dst: Path) -> Path:
        """Download one artifact of a run into ``dst``; return the local file."""
        dst.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run_id, name, str(dst)))

    def finish(self, run_id: str, status: str = FINISHED) -> None:
        """Terminate a run with a status."""
        self.client.set_terminated(run_id, status=status)

    def fail(self, run_id: str, reason: str, status: str = FAILED) -> None:
        """Record why a run failed and terminate it."""
        self.set_tags(run_id, {Tag.FAILURE: reason})
        self.finish(run_id, status)

    def delete_run(self, run_id: str) -> None:
        """Delete a run (it disappears from searches and the UI)."""
        self.client.delete_run(run_id)
