"""The augmentation's cost on its own: bench's TrainAugment vs kornia's RandomResizedCrop.

One batch of 64 float images (3 × 224 × 224 source → 224 px output; also 64 → 64 px) through:
bench's fine-tune augmentation (per-image crop boxes drawn on the CPU, one ``grid_sample`` for
the crops, one for the flipped/rotated subset); the same recipe with kornia's augmentation
modules with ``cropping_mode="slice"`` (kornia's default: per-image crop + resize) and with
``cropping_mode="resample"`` (one warp per batch); and bench's two Barlow Twins views. Median of
10 calls after a warm-up, on the CPU (and on CUDA when present). Prints one JSON line.

    python benchmarks/bench_augment.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import kornia.augmentation as K
import torch

from bench.data.augment import TrainAugment
from bench.seeds import generator
from bench.ssl.augment import SSLViews

BATCH, REPEATS = 64, 10


def kornia_recipe(size: int, mode: str) -> torch.nn.Module:
    """The paper's fine-tune recipe with kornia modules."""
    return torch.nn.Sequential(
        K.RandomResizedCrop((size, size), scale=(0.7, 1.0), ratio=(3 / 4, 4 / 3),
                            cropping_mode=mode),
        K.RandomHorizontalFlip(p=0.25),
        K.RandomRotation(45.0, p=0.25),  # kornia pads with zeros here; bench reflects
    )


def median_ms(fn, device: torch.device) -> float:
    fn()
    times = []
    for _ in range(REPEATS):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 1)


def measure(device: torch.device, size: int) -> dict[str, float]:
    x = torch.rand(BATCH, 3, size, size, device=device)
    gen = generator(0)
    ours = TrainAugment(size=size)
    views = SSLViews(size=size)
    slice_mode = kornia_recipe(size, "slice").to(device)
    resample_mode = kornia_recipe(size, "resample").to(device)
    return {
        "bench_train_augment_ms": median_ms(lambda: ours(x, gen), device),
        "kornia_rrc_slice_ms": median_ms(lambda: slice_mode(x), device),
        "kornia_rrc_resample_ms": median_ms(lambda: resample_mode(x), device),
        "bench_ssl_two_views_ms": median_ms(lambda: views(x, gen), device),
    }


def main() -> int:
    torch.set_num_threads(os.cpu_count() or 1)
    out: dict[str, object] = {"benchmark": "augmentation_cost", "batch": BATCH,
                              "cores": os.cpu_count()}
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available()
                                       else [])
    for dev in devices:
        for size in (64, 224):
            for k, v in measure(dev, size).items():
                out[f"{dev.type}_{size}px_{k}"] = v
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
