"""The calibrated cost model: the fit recovers known rates, banks are found from the runs'
times, the error is out of sample, and `bench calibrate` / `bench plan` / `bench status --cost`
show it."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_SUITE

from bench.plan.rates import KindError, Rates, Unit, _banks, cross_errors, fit
from bench.track import FINISHED, RunRecord


def _units(abc: dict[str, tuple[float, float, float]], n: int = 12, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for kind, (a, b, c) in abc.items():
        for i in range(n):
            cost, trials = float(rng.uniform(1e3, 1e5)), int(rng.integers(1, 9))
            out.append(Unit(kind, f"{kind}-{i}", cost, trials, a + b * cost + c * trials))
    return out


def test_the_fit_recovers_each_kinds_overhead_throughput_and_per_trial_cost() -> None:
    truth = {"stage": (2.0, 3e-4, 0.0), "trials:linear_probe": (0.5, 1e-5, 0.07),
             "trials:fine_tune": (1.0, 2e-4, 0.3)}
    rates = fit(_units(truth))
    for kind, abc in truth.items():
        np.testing.assert_allclose(rates.per_kind[kind], abc, rtol=1e-6, atol=1e-9)
    # exact data: the out-of-sample error is nil in every kind
    assert all(abs(e.error) < 1e-6 for e in cross_errors(_units(truth)))
    # a kind with fewer than 3 finished units falls back to the pooled seconds per cost
    few = fit(_units({"stage": (0.0, 1e-3, 0.0)}, n=2))
    assert "stage" not in few.per_kind
    assert few.seconds(Unit("stage", "x", 1000.0)) == pytest.approx(1.0)
    assert Rates.from_json(rates.to_json()).per_kind == rates.per_kind
    assert KindError("k", 1, 10.0, 12.5).error == pytest.approx(0.25)


def _run(key: str, start: int, end: int) -> RunRecord:
    return RunRecord(key, key, "trial", FINISHED, {}, {}, {}, start, end)


def test_runs_claimed_together_are_one_unit() -> None:
    bank = [_run("a", 0, 900), _run("b", 3, 905), _run("c", 5, 910)]
    alone = [_run("d", 1000, 1500), _run("e", 1500, 2100)]
    groups = _banks(alone + bank)
    assert [[r.key for r in g] for g in groups] == [["a", "b", "c"], ["d"], ["e"]]


def test_calibrate_plan_and_status_show_the_model(tmp_path, capsys) -> None:
    from bench.cli import main

    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_SUITE.format(output=tmp_path / "out").replace(
        "protocols: [ft, lp]", "protocols: [lp]").replace("/ft", "/lp"))
    assert main(["plan", str(suite)]) == 0
    assert "expected time: no rates yet" in capsys.readouterr().out
    assert main(["calibrate", str(suite), "--seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert "image passes/s" in out and (tmp_path / "out" / "calibration").is_dir()
    assert main(["plan", str(suite)]) == 0
    assert "expected time by bench calibrate: cpu-1t:" in capsys.readouterr().out
    assert main(["run", str(suite), "--quiet"]) == 0
    assert main(["run", str(suite), "--quiet", "--set", "seeds.count=4"]) == 0
    capsys.readouterr()
    assert main(["status", str(suite), "--cost"]) == 0
    text = capsys.readouterr().out
    assert "cost model on" in text and "trials:linear_probe" in text and "stage" in text
    assert main(["plan", str(suite), "--set", "seeds.count=6"]) == 0
    assert "expected time by this store's" in capsys.readouterr().out


def test_the_paper_suite_is_calibrated_in_its_precision_and_costed_without_its_data(
        tmp_path, capsys, monkeypatch) -> None:
    """`bench calibrate` reads neither data nor weights: on a machine without them it measures
    each unit kind in the suite's own precision (fp32 in the paper suite), and `bench plan
    --allow-missing` then prints the expected hours by the datasets' declared image counts."""
    from pathlib import Path

    from bench.cli import main
    from bench.execute import calibrate as cal
    from bench.plan import build_plan, load_suite

    paper = Path(__file__).resolve().parents[1] / "suites" / "isic2019star.yaml"
    plan = build_plan(load_suite(paper, env={}), lenient=True)
    assert {ex.kind: ex.precision for ex in cal.examples(plan)} == {
        "stage": "fp32", "trials:fine_tune": "fp32", "search": "fp32",
        "trials:linear_probe": "fp32"}
    seen: list[str] = []
    autocast = cal.autocast

    def recorded(device, precision="auto"):
        seen.append(precision)
        return autocast(device, precision)

    monkeypatch.setattr(cal, "autocast", recorded)
    small = ["--profile", "smoke", "--output", str(tmp_path / "paper"),
             *(a for init in ("SL", "SSL", "VICReg", "VICReg200")
               for a in ("--set", f"inits.{init}.arch=tiny_resnet_w8"))]
    assert main(["calibrate", str(paper), "--seconds", "1", *small]) == 0
    assert "with --allow-missing until the data are in place" in capsys.readouterr().out
    assert seen and set(seen) == {"fp32"}
    assert main(["plan", str(paper), "--allow-missing", *small]) == 0
    out = capsys.readouterr().out
    assert "expected time by bench calibrate: cpu-" in out, out
    assert "by the image counts that datasets dermnet, isic, pad declare" in out


def test_calibrate_measures_each_shape_once_and_compiles_where_bench_run_does(
        tmp_path, capsys, monkeypatch) -> None:
    """The paper suite's fine-tune trials, lr searches and linear probes share one encoder,
    image size, batch size and precision: measured once, for half the time (the stage is the
    other shape). ``--compile`` off CUDA is exit 2 naming the flag; the suite's ``compile`` or
    BENCH_COMPILE=1 compile on CUDA only, as in ``bench run``; compiled rates are kept beside
    the others."""
    from pathlib import Path

    import torch

    from bench.cli import main
    from bench.execute import calibrate as cal
    from bench.plan import build_plan, load_suite
    from bench.plan.rates import calibration_path

    paper = Path(__file__).resolve().parents[1] / "suites" / "isic2019star.yaml"
    plan = build_plan(load_suite(paper, env={}), lenient=True)
    calls: list[tuple[tuple, float, bool]] = []

    def measured(ex, device, budget, compiled=False):
        calls.append((ex.shape, budget, compiled))
        return (1e-3, 6e-3) if ex.batch_size == 64 else (2e-3, 9e-3)

    monkeypatch.setattr(cal, "measure", measured)
    rates = cal.calibrate(plan, torch.device("cpu"), 8.0)
    assert calls == [(("resnet50", 256, 128, "fp32"), 4.0, False),
                     (("resnet50", 256, 64, "fp32"), 4.0, False)]
    b = {k: v[1] for k, v in rates.per_kind.items()}
    assert b == pytest.approx({"stage": 3e-3, "trials:fine_tune": 2e-3, "search": 2e-3,
                               "trials:linear_probe": 1e-3})

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [cal.wants_compile(None, s, e, d) for s, e, d in [
        (True, {}, cuda), (False, {"BENCH_COMPILE": "1"}, cuda), (False, {}, cuda),
        (True, {"BENCH_COMPILE": "1"}, cpu)]] == [True, True, False, False]
    assert cal.wants_compile(False, True, {}, cuda) is False
    assert cal.wants_compile(True, False, {}, cuda) is True
    name = cal.device_class(cpu, compiled=True)
    assert name == cal.device_class(cpu) + "+compile"
    assert calibration_path(tmp_path, name) != calibration_path(tmp_path, cal.device_class(cpu))

    small = ["--profile", "smoke", "--output", str(tmp_path / "paper"), "--device", "cpu",
             *(a for init in ("SL", "SSL", "VICReg", "VICReg200")
               for a in ("--set", f"inits.{init}.arch=tiny_resnet_w8"))]
    assert main(["calibrate", str(paper), "--seconds", "1", "--compile", *small]) == 2
    err = capsys.readouterr().err
    assert "--compile" in err and "CUDA only" in err and "--device cuda" in err
    monkeypatch.setenv("BENCH_COMPILE", "1")
    assert main(["calibrate", str(paper), "--seconds", "1", "--set", "compile=true",
                 *small]) == 0
    assert [p.stem for p in (tmp_path / "paper" / "calibration").iterdir()] == [
        cal.device_class(cpu)]
    assert not any(c[2] for c in calls)
