"""Bad input costs nothing: checked before the first unit, exit 2 and a message naming the field
and the file; and what bench writes is the same for the same content."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import free_port, suite_plan, suite_tracker

from bench.cli import main


@pytest.mark.parametrize("content", ["garbage", "empty", "wrong_shapes"])
def test_weights_are_opened_before_anything_trains(tiny_suite: Path, capsys, content: str) -> None:
    from bench.models.registry import seeded_backbone

    weights = tiny_suite.parent / f"{content}.pt"
    if content == "garbage":
        weights.write_bytes(b"\x00not a state dict\xff" * 10)
    elif content == "empty":
        weights.write_bytes(b"")
    else:  # a state dict of another width: every key there, shapes wrong
        torch.save(seeded_backbone("tiny_resnet", 0).state_dict(), weights)
    rc = main(["run", str(tiny_suite), "--quiet", "--set", f"inits.rnd.weights=file:{weights}"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"inits.rnd.weights (file:{weights})" in err and len(err.strip().splitlines()) == 1
    assert not (tiny_suite.parent / "out" / "encoders").exists()  # nothing trained
    assert suite_tracker(tiny_suite).runs("trial") == []


def test_the_same_weights_give_the_same_encoder_file(tiny_suite: Path) -> None:
    from bench.execute.artifacts import Artifacts
    from bench.models.registry import seeded_backbone

    plan = suite_plan(tiny_suite)
    tracker = suite_tracker(tiny_suite)
    out = tiny_suite.parent / "out"
    artifacts = Artifacts(plan, tracker, out)
    for key in ("a" * 64, "b" * 64):  # two runs writing the same weights
        run = tracker.start("stage", key, key[:4])
        artifacts.save_encoder(key, seeded_backbone("tiny_resnet_w8", 0), run).place()
    a, b = ((out / "encoders" / f"{k * 64}.pt").read_bytes() for k in "ab")
    assert a == b
    tags = [r.tags["bench.encoder_sha256"] for r in tracker.runs("stage")]
    assert len(set(tags)) == 1


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_workers_below_one_are_a_usage_error(tiny_suite: Path, capsys, workers: str) -> None:
    assert main(["run", str(tiny_suite), "--workers", workers]) == 2
    assert "give a whole number of at least 1" in capsys.readouterr().err


def test_class_names_any_characters_train_log_and_report_as_named(tiny_suite: Path,
                                                                  capsys) -> None:
    names = "{c0: 'nevus (benign)', c1: 'a&b%c+<d>'}"
    args = ["--set", f"datasets.tgt.class_map={names}", "--set", "grid.protocols=[lp]",
            "--set", "grid.chains=[[]]", "--set", "contrasts=[]"]
    assert main(["run", str(tiny_suite), "--quiet", *args]) == 0
    runs = suite_tracker(tiny_suite).runs("trial")
    assert runs and all(r.status == "FINISHED" for r in runs)
    assert "test_f1_nevus _benign_" in runs[0].metrics  # the name MLflow accepts
    out = tiny_suite.parent / "report"
    assert main(["report", str(tiny_suite), *args, "--format", "markdown", "--out", str(out)]) == 0
    text = next(out.glob("*.md")).read_text()
    assert "nevus (benign)" in text  # shown as named
    assert "+<d>" not in text and "a&amp;b%c+&lt;d&gt;" in text  # HTML shown, not interpreted
    capsys.readouterr()
    collide = ["--set", "datasets.tgt.class_map={c0: 'x(y', c1: 'x)y'}"]
    assert main(["plan", str(tiny_suite), *collide]) == 2
    assert "would log the same metric names" in capsys.readouterr().err


def test_a_batch_larger_than_its_data_is_said_before_training(tiny_suite: Path, capsys) -> None:
    from bench.plan.build import batch_problems

    args = ["--set", "grid.chains=[[]]", "--set", "grid.protocols=[lp]", "--set", "contrasts=[]",
            "--set", "protocols.lp.batch_size=40"]
    assert main(["run", str(tiny_suite), *args]) == 0
    out = capsys.readouterr().out
    assert out.index("warning: protocols.lp.batch_size: 40 is more than the 36 images of "
                     "tgt:train: each epoch is one batch of 36") < out.index("seed=0")
    plan = suite_plan(tiny_suite, "stages.sup.batch_size=64")
    assert batch_problems(plan, [], plan.stages[:1]) == [
        "stages.sup.batch_size: 64 is more than the 60 images it trains on: each epoch is one "
        "batch of 60"]


def test_an_absurd_learning_rate_is_said_before_training(tiny_suite: Path) -> None:
    from bench.plan.build import LR_RANGE, lr_problems

    plan = suite_plan(tiny_suite, "protocols.lp.lr_search.lr=1e30", "stages.sup.warmup_lr=1e-9")
    lp = [c for c in plan.cells if c.protocol == "lp"]
    assert lr_problems(plan, lp, plan.stages[:1]) == [
        "protocols.lp.lr_search.lr: 1e+30 is far outside the learning rates that train "
        "(1e-07 … 10); check its exponent",
        "stages.sup.warmup_lr: 1e-09 is far outside the learning rates that train "
        "(1e-07 … 10); check its exponent"]
    assert LR_RANGE == (1e-7, 10.0)
    ok = suite_plan(tiny_suite, "protocols.lp.lr_search.lr=10", "stages.sup.warmup_lr=1e-7")
    assert lr_problems(ok, ok.cells, ok.stages) == []  # the bounds themselves train


def test_a_store_locked_for_long_is_one_message() -> None:
    from bench.errors import BenchError
    from bench.mlflow_store import Retrying

    class Locked:
        calls = 0

        def search_runs(self, *args, **kwargs):
            Locked.calls += 1
            raise RuntimeError("(sqlite3.OperationalError) database is locked")

    client = Retrying(Locked(), "sqlite:////data/out/mlflow.db", attempts=3)
    with pytest.raises(BenchError, match=r"tracking store /data/out/mlflow\.db stayed locked "
                                         r"by another process"):
        client.search_runs()
    assert Locked.calls == 3  # retried first


def test_suite_output_and_tracking_uri_are_checked_up_front(tiny_suite: Path, tmp_path: Path,
                                                            capsys) -> None:
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes(tiny_suite.read_bytes().replace(b"a tiny suite", b"caf\xe9"))
    assert main(["run", str(latin)]) == 2
    assert "not UTF-8 text (byte" in capsys.readouterr().err
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert main(["run", str(tiny_suite), "--output", str(a_file / "out")]) == 2
    err = capsys.readouterr().err
    assert f"output folder {a_file / 'out'}" in err and "--output" in err
    assert main(["run", str(tiny_suite), "--tracking-uri", "foo://x"]) == 2
    assert "--tracking-uri: 'foo://x' has an unsupported scheme 'foo'" in capsys.readouterr().err


def _image_folder_escaping_its_root(tmp_path: Path) -> str:
    """An image_folder dataset whose class folder ``c1`` is a link to a folder outside it."""
    from PIL import Image

    root, outside = tmp_path / "images", tmp_path / "elsewhere" / "c1"
    (root / "c0").mkdir(parents=True)
    outside.mkdir(parents=True)
    for folder in (root / "c0", outside):
        for i in range(6):
            Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(folder / f"{folder.name}_{i}.png")
    (root / "c1").symlink_to(outside, target_is_directory=True)
    return (f"datasets.tgt={{format: image_folder, root: '{root}', image_ext: .png, "
            "split: {seed: 0, fractions: {train: 0.5, test: 0.5}}}")


# id → (arguments after the suite, environment, files to make, what the one-line message says)
BAD_INPUTS = {
    "weights-garbage": (lambda d: ["--set", f"inits.rnd.weights=file:{d / 'bad.pt'}"], {},
                        {"bad.pt": b"\x00not a state dict"}, "inits.rnd.weights (file:"),
    "suite-field": (lambda d: ["--set", "stages.sup.epochz=2"], {}, {}, "epochz"),
    "output-under-a-file": (lambda d: ["--output", str(d / "a_file" / "out")], {},
                            {"a_file": b"x"}, "output folder"),
    "output-unmakeable": (lambda d: ["--output", "/proc/bench-out"], {}, {}, "output folder"),
    "tracking-scheme": (lambda d: ["--tracking-uri", "foo://x"], {}, {},
                        "unsupported scheme 'foo'"),
    "tracking-server-down": (lambda d: ["--tracking-uri", f"http://127.0.0.1:{free_port()}"],
                             {}, {}, "is not reachable"),
    "tracking-store-corrupt": (lambda d: [], {}, {"out/mlflow.db": b"\x13garbage" * 600},
                               "is not a readable MLflow database"),
    "claims-ttl-too-short": (lambda d: [], {"BENCH_CLAIM_TTL": "20"}, {},
                             "BENCH_CLAIM_TTL (20 s) must exceed 3 × BENCH_HEARTBEAT_S"),
    "claims-scheme": (lambda d: ["--claims-uri", "mysql://u@localhost/db"], {}, {},
                      "'mysql' is not supported"),
    "threads-not-a-number": (lambda d: [], {"BENCH_THREADS": "two"}, {}, "BENCH_THREADS='two'"),
    "class-without-training-image": (
        lambda d: ["--set", "datasets.tgt.split={seed: 0, counts: {train: {c0: 6, c1: 6, "
                            "c2: 0}}, rest: test}"], {}, {},
        "1 class(es) of 'tgt' have no image in 'tgt:train': ['c2']"),
    "symlink-out-of-root": (lambda d: ["--set", _image_folder_escaping_its_root(d)], {}, {},
                            "symbolic links lead outside the root"),
    "images-not-as-declared": (lambda d: ["--set", "datasets.tgt.images=71"], {}, {},
                               "dataset 'tgt' holds 72 images and the suite declares 71 "
                               "(datasets.tgt.images)"),
    **({} if torch.cuda.is_available() else {
        "cuda-without-a-gpu": (lambda d: ["--set", "device=cuda"], {}, {},
                               "device 'cuda' was asked for (the suite's `device`, or --device)")}),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_every_bad_input_is_exit_2_with_one_line_before_anything_trains(
        tiny_suite: Path, tmp_path: Path, capsys, monkeypatch, case: str) -> None:
    """The README's exit-code table: a bad suite, data, weights, output folder, tracking store or
    server, claims store or setting is exit 2 and one line naming it, and nothing is trained."""
    args, env, files, needle = BAD_INPUTS[case]
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    small = ["--set", "grid.chains=[[]]", "--set", "grid.protocols=[lp]", "--set", "contrasts=[]"]
    rc = main(["run", str(tiny_suite), "--quiet", *small, *args(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert needle in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out" / "encoders").exists()
    if case != "tracking-store-corrupt" and (tmp_path / "out" / "mlflow.db").exists():
        assert suite_tracker(tiny_suite).runs("trial") == []


def test_results_never_mix_numerics(tiny_suite: Path, capsys) -> None:
    """The CPU thread count changes a trial's numbers and is in no key: every run is tagged with
    its numerics, and a run that would add results computed otherwise is refused."""
    small = ["--set", "grid.chains=[[]]", "--set", "grid.protocols=[lp]", "--set", "contrasts=[]"]
    assert main(["run", str(tiny_suite), "--quiet", *small]) == 0
    runs = suite_tracker(tiny_suite).runs("trial")
    assert {r.tags["bench.numerics"] for r in runs} == {
        "device=cpu threads=1 deterministic=False"}
    capsys.readouterr()
    assert main(["run", str(tiny_suite), "--quiet", *small, "--set", "seeds.count=3",
                 "--set", "threads=2"]) == 2
    err = capsys.readouterr().err
    assert "2 finished unit(s) of this suite" in err
    assert "[device=cpu threads=1 deterministic=False]" in err
    assert "[device=cpu threads=2 deterministic=False]" in err and "BENCH_THREADS=1" in err
    assert len(suite_tracker(tiny_suite).runs("trial")) == 2  # nothing added


def test_workers_share_the_cores_whatever_the_suite_threads(monkeypatch) -> None:
    from bench.execute import numerics
    from bench.execute.workers import worker_env

    monkeypatch.delenv("BENCH_THREADS", raising=False)
    monkeypatch.setattr(numerics, "usable_cores", lambda: 2)
    monkeypatch.setattr("bench.execute.workers.usable_cores", lambda: 2)
    assert numerics.cpu_threads(2, workers=3) == 1  # 3 workers × 2 threads would be 4× slower
    assert numerics.cpu_threads(2, workers=1) == 2 and numerics.cpu_threads(None) is None
    env = worker_env(0, 3, None)
    assert env["BENCH_THREADS"] == "1"
    monkeypatch.setenv("BENCH_THREADS", env["BENCH_THREADS"])  # what each worker sees
    assert numerics.cpu_threads(2, workers=1) == 1
