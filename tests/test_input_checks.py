"""Bad input costs nothing: checked before the first unit, exit 2 and a message naming the field
and the file; and what bench writes is the same for the same content."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import suite_plan, suite_tracker

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
        artifacts.save_encoder(key, seeded_backbone("tiny_resnet_w8", 0), run)
    a, b = ((out / "encoders" / f"{k * 64}.pt").read_bytes() for k in "ab")
    assert a == b
    tags = [r.tags["bench.encoder_sha256"] for r in tracker.runs("stage")]
    assert len(set(tags)) == 1


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_workers_below_one_are_a_usage_error(tiny_suite: Path, capsys, workers: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", str(tiny_suite), "--workers", workers])
    assert info.value.code == 2
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
