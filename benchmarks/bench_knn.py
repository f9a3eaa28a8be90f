"""A demo-sized kNN cell against the demo's linear probe on cached features.

The demo's target set (the demo suite's generator: 600 images of 4 classes at 32 px; 210
training, 390 test images) on its tiny ResNet with random weights: one kNN cell of 8 trials
(one pass: its trials share the bank) vs the same 8 trials as a cached-feature linear probe of
30 epochs (a HeadBank). Prints one JSON line; the issue's goal is a kNN cell in under 10 s on
the CPU.

    python benchmarks/bench_knn.py
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch

from bench.config.protocols import parse_protocol
from bench.config.schema import SyntheticSpec
from bench.data import synthetic
from bench.data.loader import ImageSet
from bench.models.registry import seeded_backbone
from bench.protocols import protocol_for
from bench.seeds import trial_seeds

TRIALS = 8


def main() -> int:
    torch.set_num_threads(1)  # the demo's numerics: 1 thread per worker
    spec = SyntheticSpec(n_classes=4, n_images=600, image_size=32, imbalance=0.3, noise=0.9,
                         seed=7, label_factors=["colour"])
    x = torch.from_numpy(synthetic.render(spec))
    y = torch.from_numpy(synthetic.labels(spec)).long()
    train, test = ImageSet(x[:210], y[:210]), ImageSet(x[210:], y[210:])
    classes = synthetic.class_names(4)
    seeds = [trial_seeds(i, 0, ["head"]) for i in range(TRIALS)]
    cpu = torch.device("cpu")
    knn = parse_protocol(dict(kind="knn", train="d:train", test="d:test", image_size=32))
    probe = parse_protocol(dict(kind="linear_probe", train="d:train", test="d:test", epochs=30,
                                batch_size=32, image_size=32, cache_features=True,
                                lr_search={"lr": 0.01}, tta={"mode": "clean"}))
    times = {}
    for spec_ in (knn, probe):  # warm-up: the first forward passes pay for their kernels
        protocol_for(spec_.kind).run(seeded_backbone("tiny_resnet", 0), spec_, train, test,
                                     classes, seeds[:1], cpu, 0.01)
    for name, spec_ in (("knn", knn), ("linear_probe", probe)):
        t0 = time.perf_counter()
        res = protocol_for(spec_.kind).run(seeded_backbone("tiny_resnet", 0), spec_, train,
                                           test, classes, seeds, cpu, 0.01)
        times[name] = time.perf_counter() - t0
        assert len(res) == TRIALS
    print(json.dumps({
        "benchmark": "knn_cell_vs_probe_cell", "trials": TRIALS, "cores": os.cpu_count(),
        "train": len(train), "test": len(test), "knn_s": round(times["knn"], 3),
        "probe_s": round(times["linear_probe"], 3),
        "probe_over_knn": round(times["linear_probe"] / times["knn"], 1),
        "goal": "knn_s < 10",
    }))
    return 0 if times["knn"] < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
