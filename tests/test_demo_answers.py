"""suites/demo.yaml end to end on its linear-probe half (run, rerun: nothing trains, plan, report
in every format), and its known answers: the controls its data guarantees (SSL ≻ SL on the linear
probe; further pre-training improves SL; SL and SSL alike after it) come out so.

The run is the demo's own — its data, models, epochs, seeds and 4 pre-training runs per chain,
2 workers of 1 thread as `make demo` runs it, so its numbers are the report's — without the
fine-tune cells (the controls read the linear probe).
``BENCH_DEMO_SEEDS=0,1,2,3,4`` runs it for several base seeds (init, stage and trial seeds all
shifted) and prints every contrast's Δ, Holm-adjusted p and verdict: the margin of safety of the
controls.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import yaml

from bench.cli import main

SUITE = Path(__file__).resolve().parents[1] / "suites" / "demo.yaml"
PROBE_HALF = ["grid.protocols=[linear_probe]"]
SEEDS = [int(s) for s in os.environ.get("BENCH_DEMO_SEEDS", "0").split(",")]


def demo_profile(base: int) -> list[str]:
    """``--set`` overrides of the probe half with every seed shifted by ``base``."""
    raw = yaml.safe_load(SUITE.read_text())
    probe = [c for c in raw["contrasts"] if c["a"].endswith("/linear_probe")]
    shifted = [f"inits.tiny.seed={base}", f"seeds.base={100 * base}",
               *(f"stages.{s}.seed={base}" for s in raw["stages"])]
    sets = [*PROBE_HALF, f"contrasts={json.dumps(probe)}", *shifted]
    return [a for s in sets for a in ("--set", s)]


@pytest.mark.slow
@pytest.mark.parametrize("base", SEEDS)
def test_the_demo_gives_its_known_answers(base: int, tmp_path: Path, capsys,
                                          monkeypatch) -> None:
    monkeypatch.setenv("BENCH_THREADS", "1")  # as `make demo`: the suite's numerics anywhere
    sets, out = demo_profile(base), ["--output", str(tmp_path / "runs")]
    run = ["run", str(SUITE), *sets, *out, "--quiet"]
    assert main([*run, "--workers", "2"]) == 0
    capsys.readouterr()
    assert main(run) == 0  # nothing left to train (one process of the suite's 1 thread)
    assert "0 stage(s) trained, 16 already done; 0 trial(s) run, 32 already done" \
        in capsys.readouterr().out
    assert main(["plan", str(SUITE), *sets, *out]) == 0
    plan_text = capsys.readouterr().out
    assert "finished: 32/32 trials, 16/16 stages" in plan_text
    assert "replicated stages: SL ×4, SSL ×4" in plan_text
    assert main(["status", str(SUITE), *sets, *out, "--cost"]) == 0
    cost = capsys.readouterr().out
    with capsys.disabled():  # the model's error per unit kind, out of sample (shown with -s)
        print("\n" + cost[cost.index("cost model on"):])
    assert "  stage " in cost and "trials:linear_probe" in cost
    rep = tmp_path / "report"
    assert main(["report", str(SUITE), *sets, *out, "--report-dir", str(rep), "--format", "csv",
                 "--format", "markdown", "--format", "html", "--format", "latex"]) == 0
    text = capsys.readouterr().out
    rows = {(r["a"], r["b"], r["metric"]): r for r in csv.DictReader(
        (rep / "contrasts.csv").open())}
    print()
    for (a, b, metric), r in rows.items():  # the margin of safety, per control
        print(f"base {base}: {a} vs {b} ({metric}): Δ {float(r['delta']):+.3f} "
              f"p_holm {float(r['p_holm']):.2g} evidence {r['evidence']} → {r['verdict']}")
    assert "Controls: all 6 passed" in text
    for r in rows.values():  # every verdict rests on the 4 pre-training runs of each cell
        assert (r["evidence"], r["n_a"], r["n_b"]) == ("replicates", "4", "4")
    md = (rep / "report.md").read_text()
    assert md.index("**Controls: all 6 passed**") < md.index("## Results")
    assert "## Pre-training replicates" in md and "## Partial orders" in md
    assert (rep / "report.html").read_text().count("<svg") >= 2
    assert (rep / "report.tex").read_text().startswith("% bench report")
    trials = (rep / "trials.csv").read_text().splitlines()
    assert len(trials) == 1 + 32 and "accuracy" in trials[0]


MEASURED = {"SL": (10, 0, 4), "SSL": (4, 0, 4), "I_SSL": (20, 1, 1)}
"""The demo's stages (epochs, warm-up epochs, replicates) whose six-base-seed margins the README
states (``BENCH_DEMO_SEEDS=0,1,2,3,4,5``): with SSL at 6 epochs base seed 5 failed the
no-difference control. Another setting needs those margins measured again."""


def test_the_demo_is_the_one_whose_margins_were_measured() -> None:
    from bench.plan import load_suite

    stages = load_suite(SUITE, env={}).suite.stages
    assert {n: (s.epochs, s.warmup_epochs, s.replicates) for n, s in stages.items()} == MEASURED
