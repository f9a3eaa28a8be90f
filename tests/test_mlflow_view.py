"""What a person sees in MLflow after `bench run`, read back from a real SQLite store: the
experiment's description, MLflow's own source / user / git tags, trial names seed first, only
the parameters that act, the datasets each run read, cell runs with aggregate metrics and the
resolved suite as an artifact."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from conftest import suite_tracker
from mlflow.tracking import MlflowClient
from ruamel.yaml import YAML

from bench.cli import main
from bench.execute.run_view import acting, trial_run_name
from bench.track import Tag, default_tracking_uri


def test_a_run_reads_in_mlflow_as_its_users_expect(tiny_suite: Path) -> None:
    assert main(["run", str(tiny_suite), "--quiet"]) == 0
    out = tiny_suite.parent / "out"
    client = MlflowClient(default_tracking_uri(out))
    exp = client.get_experiment_by_name("tiny")
    assert exp.tags["mlflow.note.content"] == "a tiny suite for tests"  # its description
    tracker = suite_tracker(tiny_suite)
    runs = {kind: tracker.runs(kind) for kind in ("stage", "cell", "trial")}
    assert [len(runs[k]) for k in ("stage", "cell", "trial")] == [2, 4, 8]
    for r in (x for rs in runs.values() for x in rs):
        tags = r.tags
        assert tags["mlflow.source.name"] == f"bench run {tiny_suite.resolve()}"
        assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.user"]
        assert tags.get("mlflow.source.git.commit") == tags["bench.git_commit"] or \
            tags["bench.git_commit"] == "unknown"
    # trials: named seed first; only the settings that act (lp's lr is fixed, its TTA clean)
    for r in runs["trial"]:
        cell = r.tags[Tag.CELL]
        assert r.tags["mlflow.runName"] == f"s{int(r.tags[Tag.SEED]):02d} · {cell}"
        assert "protocol.lr_search.method" in r.params
        if cell.endswith("/lp"):
            assert r.params["protocol.lr_search.lr"] == "0.01"
            assert "protocol.lr_search.start_lr" not in r.params
            assert "protocol.tta.passes" not in r.params
        # the data it read, by manifest digest
        inputs = client.get_run(r.run_id).inputs.dataset_inputs
        got = {d.dataset.name: (d.dataset.digest, d.tags[0].value) for d in inputs}
        assert got == {"tgt:train": (r.tags[Tag.MANIFEST_PREFIX + "tgt:train"][:36], "training"),
                       "tgt:test": (r.tags[Tag.MANIFEST_PREFIX + "tgt:test"][:36], "test")}
    # each epoch's loss, step by step (written in batches: bench.execute.curves)
    for r in runs["trial"]:
        assert [m.step for m in client.get_metric_history(r.run_id, "train_loss")] == [0]
    bt = next(r for r in runs["stage"] if r.tags[Tag.STAGE] == "bt")
    assert {k: [m.step for m in client.get_metric_history(bt.run_id, k)]
            for k in ("warmup_loss", "train_loss")} == {"warmup_loss": [0], "train_loss": [1]}
    stage_inputs = client.get_run(runs["stage"][0].run_id).inputs.dataset_inputs
    assert [(d.dataset.name, d.tags[0].value) for d in stage_inputs] == [("src:train",
                                                                          "pretraining")]
    # cells: mean, SD and n of each metric over their trials; the resolved suite
    for c in runs["cell"]:
        vals = [t.metrics["test_accuracy"] for t in runs["trial"] if t.tags[Tag.CELL_KEY] == c.key]
        assert c.metrics["test_accuracy_n"] == len(vals) == 2
        assert math.isclose(c.metrics["test_accuracy_mean"], statistics.fmean(vals),
                            rel_tol=1e-12)
        assert math.isclose(c.metrics["test_accuracy_sd"], statistics.stdev(vals),
                            rel_tol=1e-9, abs_tol=1e-12)
        assert "test_f1_weighted_mean" in c.metrics
        suite = YAML(typ="safe").load(Path(client.download_artifacts(
            c.run_id, "suite.resolved.yaml", str(tiny_suite.parent / "dl" / c.run_id))))
        assert suite["name"] == "tiny" and suite["protocols"]["lp"]["lr_search"]["lr"] == 0.01
        assert suite["datasets"]["tgt"]["synthetic"]["n_images"] == 72


def test_trial_names_and_acting_parameters() -> None:
    assert trial_run_name(3, "SSL+I_SSLp/linear_probe") == "s03 · SSL+I_SSLp/linear_probe"
    assert trial_run_name(123, "x/y") == "s123 · x/y"
    view = {"lr_search": {"method": "lr_finder", "lr": 0.1, "start_lr": 1e-7, "low": 1e-5},
            "tta": {"mode": "clean", "passes": 3}, "warmup_epochs": 0, "warmup_lr": 1e-3,
            "views": {"view1": {"cutout_p": 0.0, "cutout_h": [1, 2], "cutout_w": [3, 4],
                                "jitter_p": 0, "hue": 0.1, "brightness": 0.2, "rotate_p": 0.5,
                                "rotate_deg": 45}}}
    got = acting(view)
    assert got["lr_search"] == {"method": "lr_finder", "start_lr": 1e-7}
    assert got["tta"] == {"mode": "clean"} and "warmup_lr" not in got
    assert got["views"]["view1"] == {"cutout_p": 0.0, "jitter_p": 0, "rotate_p": 0.5,
                                     "rotate_deg": 45}
    cached = acting({"cache_features": True, "augment": {"flip_p": 0.5}, "epochs": 3})
    assert cached == {"cache_features": True, "epochs": 3}
    knn = {"kind": "knn", "k": 20, "epochs": 1, "lr_search": {"method": "fixed", "lr": 1e-3},
           "optimizer": {"eps": 1e-5}, "augment": {"flip_p": 0.5}, "bank_augment": False}
    assert acting(knn) == {"kind": "knn", "k": 20, "bank_augment": False}
    assert acting({**knn, "bank_augment": True})["augment"] == {"flip_p": 0.5}


def test_a_dataset_logged_by_two_runs_at_once_never_fails_a_run(tmp_path: Path,
                                                               monkeypatch, caplog) -> None:
    """MLflow inserts a dataset row after looking for it: two runs logging one part at once
    collide on its unique key; the loser tries again, and a run never fails for its datasets."""
    from bench.track import DatasetEntry, Tracker

    tracker = Tracker(default_tracking_uri(tmp_path), "x", tmp_path / "artifacts")
    run = tracker.start("trial", "k", "n")
    entry = DatasetEntry("t:train", "ab" * 32, str(tmp_path / "m.csv"), "training",
                         {"num_images": 3, "num_classes": 2})
    real, calls = tracker.client.log_inputs, []

    def collide_once(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("UNIQUE constraint failed: datasets.experiment_id")
        return real(*a, **k)

    monkeypatch.setattr(tracker.client, "log_inputs", collide_once)
    tracker.log_datasets(run, [entry])
    assert len(calls) == 2
    assert [d.dataset.name for d in tracker.client.get_run(run).inputs.dataset_inputs] == [
        "t:train"]

    def always(*a, **k):
        raise RuntimeError("the store is gone")

    monkeypatch.setattr(tracker.client, "log_inputs", always)
    tracker.log_datasets(run, [entry])  # no exception: a warning
    assert "its datasets were not logged (the store is gone)" in caplog.text


def test_epoch_losses_are_written_in_batches_and_all_when_the_run_ends(caplog) -> None:
    from bench.execute.curves import Curves

    class Store:  # the one Tracker method Curves calls
        def __init__(self) -> None:
            self.writes: list[tuple[str, list]] = []

        def log_points(self, run_id: str, points: list) -> None:
            self.writes.append((run_id, list(points)))

    store = Store()
    slow = Curves(store, every=3600.0)  # type: ignore[arg-type]
    for epoch in range(5):
        slow.add("r1", "train_loss", 1.0 / (epoch + 1), epoch)
    slow.add("r2", "warmup_loss", 2.0, 0)
    assert store.writes == []  # within the interval: held back
    slow.flush("r1")
    assert store.writes == [("r1", [("train_loss", 1.0 / (e + 1), e) for e in range(5)])]
    slow.flush("r1")  # nothing left: no write
    slow.flush("r2")
    assert store.writes[1:] == [("r2", [("warmup_loss", 2.0, 0)])]
    live = Curves(store, every=0.0)  # type: ignore[arg-type]
    live.add("r3", "train_loss", 0.5, 0)
    live.add("r3", "train_loss", 0.25, 1)
    assert store.writes[2:] == [("r3", [("train_loss", 0.5, 0)]), ("r3", [("train_loss", 0.25, 1)])]

    class Refusing:
        def log_points(self, run_id: str, points: list) -> None:
            raise RuntimeError("database is locked")

    refused = Curves(Refusing(), every=3600.0)  # type: ignore[arg-type]
    refused.add("r4", "train_loss", 1.0, 0)
    with caplog.at_level("WARNING", logger="bench"):
        refused.flush("r4")  # the run still ends: no exception
    assert "the loss curve of run r4 was not written: database is locked" in caplog.text
