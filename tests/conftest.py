"""Shared fixtures: a tiny suite that trains in seconds on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

TINY_SUITE = """\
name: tiny
description: a tiny suite for tests
output: {output}
threads: 1
datasets:
  src:
    format: synthetic
    synthetic: {{n_classes: 3, n_images: 60, image_size: 16, palette: 1, seed: 3}}
    split: {{seed: 0, fractions: {{train: 1.0}}}}
  tgt:
    format: synthetic
    synthetic: {{n_classes: 3, n_images: 72, image_size: 16, imbalance: 0.5, seed: 5}}
    split: {{seed: 0, fractions: {{train: 0.5, test: 0.5}}}}
inits:
  rnd: {{arch: tiny_resnet_w8, weights: random, seed: 0}}
stages:
  sup:
    method: supervised
    data: [src:train]
    epochs: 1
    batch_size: 16
    image_size: 16
  bt:
    method: barlow_twins
    data: [tgt:train]
    warmup_epochs: 1
    epochs: 1
    unfreeze: last_block
    batch_size: 16
    image_size: 16
    params: {{projector: {{dims: [32, 32]}}, sparse_head: 0.01}}
protocols:
  ft:
    kind: fine_tune
    train: tgt:train
    test: tgt:test
    epochs: 1
    batch_size: 12
    image_size: 16
    tta: {{passes: 2}}
  lp:
    kind: linear_probe
    train: tgt:train
    test: tgt:test
    epochs: 1
    batch_size: 12
    image_size: 16
    lr_search: {{method: fixed, lr: 0.01}}
    tta: {{mode: clean}}
grid:
  inits: [rnd]
  chains: [[sup], [sup, bt]]
  protocols: [ft, lp]
seeds: {{count: 2}}
contrasts:
  - {{a: rnd+sup+bt/ft, b: rnd+sup/ft}}
"""


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    """Path of a tiny suite whose output lies in ``tmp_path/out``."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SUITE.format(output=tmp_path / "out"))
    return path


@pytest.fixture
def write_suite(tmp_path: Path):
    """Write YAML text to a suite file and return its path."""

    def write(text: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def suite_plan(suite: Path, *overrides: str):
    """The plan of a suite file (no environment interpolation)."""
    from bench.plan import build_plan, load_suite

    return build_plan(load_suite(suite, list(overrides), env={}))


def suite_tracker(suite: Path, uri: str | None = None, name: str = "tiny"):
    """The tracker a suite whose output is ``<suite folder>/out`` writes to."""
    from bench.track import Tracker, default_tracking_uri

    out = suite.parent / "out"
    return Tracker(uri or default_tracking_uri(out), name, out / "artifacts")


def bench_process(*args: str, cwd: Path, env: dict[str, str] | None = None):
    """``bench <args>`` as a child process (unbuffered, stdout and stderr together)."""
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=cwd,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def shared_data() -> Path:
    """The real data folder named by ``BENCH_SHARED_DATA`` (HAM10000, ISIC 2019 CSVs)."""
    root = os.environ.get("BENCH_SHARED_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("real data not available: set BENCH_SHARED_DATA to the shared data folder")
    return Path(root)


def fill_store(plan, output: Path, values: dict[str, list[float | None]],
               metric: str = "accuracy") -> None:
    """Write trial runs into a real MLflow store, as ``bench run`` records them: ``values``
    maps a cell name to one value per trial (in plan order); None records a FAILED trial, NaN a
    finished trial whose metric is not finite (bench logs no NaN), inf is logged as is."""
    import math

    from bench.track import FINISHED, Tracker, default_tracking_uri

    tracker = Tracker(default_tracking_uri(output), plan.suite.name, output / "artifacts")
    seen: dict[str, int] = {}
    for t in plan.trials:
        vals = values.get(t.cell.name)
        if vals is None:
            continue
        i = seen[t.cell.name] = seen.get(t.cell.name, -1) + 1
        v = vals[i]
        tags = {"bench.cell": t.cell.name, "bench.seed": str(t.seed)}
        replicate = getattr(t.cell, "replicate", "")
        if replicate:
            tags["bench.replicate"] = replicate
        run = tracker.start("trial", t.key, f"{t.cell.name} seed={t.seed}", tags=tags)
        if v is None:
            tracker.fail(run, "NonFiniteLoss: the training loss became nan")
            continue
        if not math.isnan(v):
            tracker.log_metrics(run, {f"test_{metric}": v})
        tracker.finish(run, FINISHED)
