"""Sequential seeds on effect sizes like the paper's: how many of the 35 seeds per cell the
isic2019star suite's fine-tune contrasts need, by simulation.

Each fine-tune cell of ``suites/isic2019star.yaml`` with a published accuracy (mean and SD over
35 runs, the paper's Table 4) gets 35 simulated trial values drawn from N(mean, SD); the suite's
declared contrasts between those cells (their families, alternatives and Holm adjustment as
declared) are analysed by bench's own code twice: with the fixed 35 seeds, and with sequential
seeds (looks after 10, 20 and 35, O'Brien–Fleming; optionally ``--futility F``). Over R
repetitions it prints the mean share of the fixed design's trials the sequential one runs and
how often each contrast's verdict agrees, as one JSON line. The trial share is device-free:
times the suite's fine-tune GPU-hours, it is the bill with sequential seeds.

    python benchmarks/bench_sequential_paper.py [--reps 200] [--futility 0.1]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis import analyse
from bench.contrasts import expand_contrasts
from bench.plan import build_plan, load_suite

SUITE = Path(__file__).resolve().parents[1] / "suites" / "isic2019star.yaml"
LOOKS = [10, 20, 35]


def _arg(name: str, default: float) -> float:
    return float(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def main() -> int:
    reps = int(_arg("--reps", 200))
    futility = _arg("--futility", 0.0)
    base = load_suite(SUITE, env={})
    published = {c: p.values["accuracy"] for c, p in base.suite.published.items()
                 if "accuracy" in p.values and p.values["accuracy"].sd is not None
                 and c.endswith("/fine_tune")}
    plan0 = build_plan(base, lenient=True)
    pairs = [c for c in expand_contrasts(base.suite.contrasts, plan0.cell_names())
             if c.a in published and c.b in published]
    contrasts = [{"a": c.a, "b": c.b, "alternative": c.alternative, "family": c.family,
                  "metric": "accuracy"} for c in pairs]
    sets = ["grid.protocols=[fine_tune]", f"contrasts={json.dumps(contrasts)}",
            "report.metrics=[accuracy]", "report.bootstrap.resamples=0", "published={}"]
    seq = {"looks": LOOKS, **({"futility": futility} if futility else {})}
    fixed_plan = build_plan(load_suite(SUITE, sets, env={}), lenient=True)
    seq_plan = build_plan(load_suite(SUITE, [*sets, f"seeds.sequential={json.dumps(seq)}"],
                                     env={}), lenient=True)
    cells = [c for c in fixed_plan.cell_names() if c in published]
    rng = np.random.default_rng(20261202)
    share, agree, look_sum = [], Counter(), Counter()
    for _ in range(reps):
        rows = []
        values = {c: rng.normal(published[c].mean, published[c].sd, 35) for c in cells}
        for t in fixed_plan.trials:
            if t.cell.name in values:
                rows.append({"cell": t.cell.name, "replicate": "", "unit": "", "seed": t.seed,
                             "status": "FINISHED", "trial_key": t.key,
                             "accuracy": values[t.cell.name][t.index]})
        results = pd.DataFrame(rows)
        fixed = analyse(fixed_plan, results)
        sequential = analyse(seq_plan, results)
        state = sequential.sequential
        used = sum(LOOKS[state.stop[c]] for c in cells if state.stop[c] is not None)
        share.append(used / (35 * len(cells)))
        for f, s in zip(fixed.contrasts, sequential.contrasts, strict=True):
            agree[f.label] += f.verdict == s.verdict
            look_sum[f.label] += s.look
    print(json.dumps({
        "benchmark": "sequential_seeds_on_the_papers_effect_sizes", "reps": reps,
        "looks": LOOKS, "futility": futility or None, "cells": len(cells),
        "contrasts": len(contrasts), "trial_share": round(float(np.mean(share)), 3),
        "trial_share_p10_p90": [round(float(q), 3) for q in np.percentile(share, [10, 90])],
        "verdict_agreement": {k: round(v / reps, 3) for k, v in agree.items()},
        "min_agreement": round(min(agree.values()) / reps, 3),
        "mean_look": {k: round(v / reps, 2) for k, v in look_sum.items()},
    }, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
