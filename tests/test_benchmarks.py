"""The benchmark scripts run (their figures are measured by `make bench`, never timed here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_runs_its_whole_path_on_the_cpu() -> None:
    out = subprocess.run([sys.executable, "benchmarks/bench_gpu.py", "--smoke"], cwd=ROOT,
                         capture_output=True, text=True, check=True, timeout=300)
    fig = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("finetune_bf16_cl_img_s", "finetune_bf16_cl_compile_img_s",
                "finetune_fp32_nchw_img_s", "bt_bf16_cl_img_s", "bt_fp32_nchw_img_s"):
        assert fig[key] > 0, key
    assert 0 < fig["gpu_busy"] <= 1 and fig["augment_share"] > 0


def test_compile_switch_leaves_cpu_modules_alone() -> None:
    import torch

    from bench.train import loop

    module = torch.nn.Linear(2, 2)
    loop.set_compile(True)
    try:
        assert loop.maybe_compile(module, torch.device("cpu")) is module
    finally:
        loop.set_compile(False)


def test_startup_benchmark_runs_its_commands() -> None:
    """Each command it times succeeds (exit 2 otherwise); 1, a missed goal, is not judged here."""
    out = subprocess.run([sys.executable, "benchmarks/bench_startup.py", "--repeats", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode in (0, 1), out.stderr
    fig = json.loads(out.stdout.strip().splitlines()[-1])
    assert fig["help_s"] > 0 and fig["plan_paper_suite_s"] > 0
