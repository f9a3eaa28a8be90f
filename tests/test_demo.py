"""The demo slice end to end at a smaller size: run, rerun (nothing trains), report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main

ROOT = Path(__file__).resolve().parent.parent
SMALL = [
    "seeds.count=3",
    "datasets.source.synthetic.n_images=96",
    "datasets.source.synthetic.image_size=16",
    "datasets.target.synthetic.n_images=96",
    "datasets.target.synthetic.image_size=16",
    "stages.SL.epochs=1", "stages.SSL.epochs=1", "stages.I_SSLp.epochs=1",
    "stages.SL.image_size=16", "stages.SSL.image_size=16", "stages.I_SSLp.image_size=16",
    "stages.SL.batch_size=16", "stages.SSL.batch_size=16", "stages.I_SSLp.batch_size=16",
    "protocols.fine_tune.epochs=1", "protocols.linear_probe.epochs=1",
    "protocols.fine_tune.image_size=16", "protocols.linear_probe.image_size=16",
    "protocols.fine_tune.batch_size=16", "protocols.linear_probe.batch_size=16",
    "inits.tiny.arch=tiny_resnet_w8",
]


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path, capsys) -> None:
    suite = str(ROOT / "suites" / "demo.yaml")
    sets = [a for s in SMALL for a in ("--set", s)]
    out = ["--output", str(tmp_path / "runs")]
    assert main(["run", suite, *sets, *out]) == 0
    text = capsys.readouterr().out
    assert "4 stage(s) trained, 0 already done; 24 trial(s) run, 0 already done; 0 failed" in text
    assert main(["run", suite, *sets, *out]) == 0
    assert "0 stage(s) trained, 4 already done; 0 trial(s) run, 24 already done" \
        in capsys.readouterr().out
    assert main(["plan", suite, *sets, *out]) == 0
    plan_text = capsys.readouterr().out
    assert "finished: 24/24 trials, 4/4 stages" in plan_text
    assert "  3/3   tiny+SSL+I_SSLp/linear_probe" in plan_text
    rep = tmp_path / "report"
    assert main(["report", suite, *sets, *out, "--out", str(rep), "--format", "markdown",
                 "--format", "html", "--format", "latex", "--format", "csv"]) == 0
    md = (rep / "report.md").read_text()
    assert "## Results: fine_tune" in md and "| tiny+SSL+I_SSLp | 1 run | 3 | 0 |" in md
    assert md.count("| tiny+SSL/fine_tune | tiny+SL/fine_tune | accuracy | init | greater |") == 1
    assert "## Partial orders" in md and "## Methods" in md
    html = (rep / "report.html").read_text()
    assert html.count("<svg") >= 4
    assert (rep / "report.tex").read_text().startswith("% bench report")
    csv = (rep / "trials.csv").read_text().splitlines()
    assert len(csv) == 1 + 24 and "accuracy" in csv[0]
    assert (rep / "contrasts.csv").exists() and (rep / "cells.csv").exists()
