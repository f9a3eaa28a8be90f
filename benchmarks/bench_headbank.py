"""35-seed linear probe: one HeadBank on a shared encoder forward vs 35 separate probes.

Both give the same heads (checked here to 1e-5) and metrics (the calibration metrics to 1e-6);
the separate runs pay the encoder forward 35 times. ResNet-18 at 64 px on a synthetic set,
2 epochs, 3 TTA passes. Prints one JSON line; the goal is ≥ 30× (the limit is about 35×).

    python benchmarks/bench_headbank.py
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

from bench.config.protocols import parse_protocol
from bench.config.schema import SyntheticSpec
from bench.data import synthetic
from bench.data.loader import ImageSet
from bench.models.registry import seeded_backbone
from bench.seeds import trial_seeds
from bench.train.probe_bank import run_probe_bank
from bench.train.trial import run_trial

SEEDS, ARCH, SIZE = 35, "resnet18", 64


def _close(a: dict, b: dict) -> bool:
    """Equal metrics, the continuous ones (ece, brier, nll) to 1e-6."""
    return a.keys() == b.keys() and all(
        abs(a[k] - b[k]) <= 1e-6 if k in ("ece", "brier", "nll") else a[k] == b[k] for k in a)


def main() -> int:
    spec = SyntheticSpec(n_classes=4, n_images=384, image_size=SIZE, seed=0)
    x = torch.from_numpy(synthetic.render(spec))
    y = torch.from_numpy(synthetic.labels(spec)).long()
    train, test = ImageSet(x[:256], y[:256]), ImageSet(x[256:], y[256:])
    proto = parse_protocol(dict(
        kind="linear_probe", train="d:train", test="d:test", epochs=2, batch_size=32,
        image_size=SIZE, lr_search={"method": "fixed", "lr": 0.01}, tta={"passes": 3}))
    seeds = [trial_seeds(i, 0, ["head"]) for i in range(SEEDS)]
    classes = synthetic.class_names(4)
    cpu = torch.device("cpu")
    encoder = seeded_backbone(ARCH, 0)
    state = {k: v.clone() for k, v in encoder.state_dict().items()}

    t0 = time.perf_counter()
    bank = run_probe_bank(encoder, proto, train, test, classes, seeds, cpu, 0.01)
    bank_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    separate = []
    for s in seeds:
        encoder.load_state_dict(state)
        separate.append(run_trial(encoder, proto, train, test, classes, s, cpu))
    separate_s = time.perf_counter() - t0

    worst = max(float(np.abs(a.head - b.head).max()) for a, b in zip(bank, separate, strict=True))
    # the heads agree to float32 rounding (the bank sums its loss over heads), so the
    # predictions do: counts (accuracy, F1, AUC, confusion) are equal, the continuous
    # calibration metrics (ece, brier, nll) agree to 1e-6
    same = all(_close(a.metrics, b.metrics) for a, b in zip(bank, separate, strict=True))
    print(json.dumps({
        "benchmark": "headbank_vs_separate_probes", "seeds": SEEDS, "arch": ARCH, "size": SIZE,
        "cores": os.cpu_count(), "bank_s": round(bank_s, 2), "separate_s": round(separate_s, 2),
        "speedup": round(separate_s / bank_s, 1), "goal": ">= 30",
        "max_weight_diff": worst, "identical_metrics": same,
    }))
    return 0 if worst < 1e-5 and same else 1


if __name__ == "__main__":
    sys.exit(main())
