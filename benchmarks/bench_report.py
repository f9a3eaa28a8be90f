"""A report over 10,000 trial records (50 cells × 200 seeds) in every format.

25 encoders × 2 protocols, 200 seeds each, two metrics, every pair of cells within a protocol
contrasted (600 contrasts × 2 metrics). Times building the statistics and rendering Markdown,
HTML (with its SVG figures), LaTeX and CSV. Prints one JSON line; the goal is ≤ 1.5 s in all.

    python benchmarks/bench_report.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.plan import build_plan, load_suite
from bench.report.figures import all_figures
from bench.report.render import FILENAMES, render, write_csv
from bench.report.tables import build_report

N_INITS, SEEDS = 25, 200


def suite_text() -> str:
    inits = "\n".join(f"  e{i}: {{arch: tiny_resnet_w8, seed: {i}}}" for i in range(N_INITS))
    return f"""\
name: big
datasets:
  d:
    format: synthetic
    synthetic: {{n_images: 40, image_size: 8}}
    split: {{fractions: {{train: 0.5, test: 0.5}}}}
inits:
{inits}
protocols:
  ft: {{kind: fine_tune, train: d:train, test: d:test, epochs: 1}}
  lp: {{kind: linear_probe, train: d:train, test: d:test, epochs: 1}}
grid: {{inits: [{", ".join(f"e{i}" for i in range(N_INITS))}], protocols: [ft, lp]}}
seeds: {{count: {SEEDS}}}
contrasts:
  - {{all_pairs: true, within: protocol, family: all}}
"""


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.yaml"
        path.write_text(suite_text())
        plan = build_plan(load_suite(path, env={}))
        rng = np.random.default_rng(0)
        rows = []
        for ci, cell in enumerate(plan.cells):
            acc = rng.normal(0.6 + 0.002 * ci, 0.02, SEEDS)
            for seed in range(SEEDS):
                rows.append({"cell": cell.name, "init": cell.init, "chain": "",
                             "protocol": cell.protocol, "seed": seed, "status": "FINISHED",
                             "failure": "", "trial_key": f"{ci}-{seed}", "run_id": "",
                             "accuracy": acc[seed], "f1_weighted": acc[seed] - 0.01})
        results = pd.DataFrame(rows)
        t0 = time.perf_counter()
        data = build_report(plan, results)
        stats_s = time.perf_counter() - t0
        times = {}
        out = Path(tmp) / "out"
        out.mkdir()
        for fmt in ("markdown", "html", "latex"):
            t = time.perf_counter()
            if fmt == "html":
                data.figures = all_figures(data, results)
            (out / FILENAMES[fmt]).write_text(render(data, fmt))
            times[fmt] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        write_csv(data, results, out)
        times["csv"] = round(time.perf_counter() - t, 2)
        total = time.perf_counter() - t0
    print(json.dumps({"benchmark": "report_10k_trials", "trials": len(results),
                      "cells": len(plan.cells), "contrasts": len(data.contrasts),
                      "cores": os.cpu_count(), "stats_s": round(stats_s, 2),
                      "render_s": times, "total_s": round(total, 2), "goal_s": 1.5}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
