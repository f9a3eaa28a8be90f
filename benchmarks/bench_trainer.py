"""Trainer overhead: a fine-tune through bench vs a bare PyTorch loop doing the same work.

Both sides train the same ResNet-18 (same start weights) at 64 px on the same decoded uint8
tensors with the same augmentation (bench's kornia-based TrainAugment, same generator seeds),
AdamW + 1cycle at the same lr, for the same epochs and batches, then predict the same test set
with one clean pass. bench's side is ``run_trial`` (seeded batches, loss accumulated on the
device, hooks, metrics); the bare side is the loop a user would write by hand. The figure is
the ratio of their wall times (best of 3 alternating repeats). Prints one JSON line.

    python benchmarks/bench_trainer.py
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch
import torch.nn.functional as F

from bench.config.protocols import ProtocolBase, parse_protocol
from bench.config.schema import SyntheticSpec
from bench.data import synthetic
from bench.data.loader import ImageSet
from bench.models.heads import Classifier, init_linear
from bench.models.registry import seeded_backbone
from bench.seeds import generator, trial_seeds
from bench.train.evaluate import augment_for
from bench.train.optim import make_optimizer, make_scheduler, param_groups
from bench.train.trial import run_trial

ARCH, SIZE, N_TRAIN, N_TEST, EPOCHS, BATCH, LR, REPEATS = "resnet18", 64, 512, 128, 2, 32, 1e-3, 3


def bare_loop(state: dict, proto: ProtocolBase, train: ImageSet, test: ImageSet,
              n_classes: int, seeds: dict[str, int]) -> float:
    """The hand-written loop; returns the test accuracy."""
    backbone = seeded_backbone(ARCH, 0)
    backbone.load_state_dict(state)
    head = torch.nn.Linear(backbone.feature_dim, n_classes)
    init_linear(head, generator(seeds["head"]))
    model = Classifier(backbone, head)
    aug = augment_for(proto)
    opt = make_optimizer(param_groups([model], proto.optimizer.weight_decay), proto.optimizer, LR)
    steps = len(train) // BATCH
    sched = make_scheduler(opt, proto.schedule, LR, EPOCHS * steps)
    order_gen, aug_gen = generator(seeds["order"]), generator(seeds["augment"])
    model.train()
    for _ in range(EPOCHS):
        perm = torch.randperm(len(train), generator=order_gen)
        for i in range(steps):
            idx = perm[i * BATCH:(i + 1) * BATCH]
            x = train.images[idx].float().div_(255.0)
            loss = F.cross_entropy(model(aug(x, aug_gen)), train.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        probs = torch.cat([model(test.images[i:i + 256].float().div_(255.0)).softmax(1)
                           for i in range(0, len(test), 256)])
    return float((probs.argmax(1) == test.labels).float().mean())


def main() -> int:
    torch.set_num_threads(os.cpu_count() or 1)
    spec = SyntheticSpec(n_classes=4, n_images=N_TRAIN + N_TEST, image_size=SIZE, seed=0)
    x = torch.from_numpy(synthetic.render(spec))
    y = torch.from_numpy(synthetic.labels(spec)).long()
    train, test = ImageSet(x[:N_TRAIN], y[:N_TRAIN]), ImageSet(x[N_TRAIN:], y[N_TRAIN:])
    proto = parse_protocol(dict(
        kind="fine_tune", train="d:train", test="d:test", epochs=EPOCHS, warmup_epochs=0,
        batch_size=BATCH, image_size=SIZE, lr_search={"method": "fixed", "lr": LR},
        tta={"mode": "clean"}))
    seeds = trial_seeds(0, 0, ["head", "order", "augment"])
    classes = synthetic.class_names(4)
    cpu = torch.device("cpu")
    state = seeded_backbone(ARCH, 0).state_dict()

    def through_bench() -> float:
        backbone = seeded_backbone(ARCH, 0)
        backbone.load_state_dict(state)
        return run_trial(backbone, proto, train, test, classes, seeds, cpu).metrics["accuracy"]

    def timed(fn) -> tuple[float, float]:
        t0 = time.perf_counter()
        acc = fn()
        return time.perf_counter() - t0, acc

    timed(through_bench)  # warm-up (allocator, kernels)
    bench_s, bare_s = [], []
    for _ in range(REPEATS):
        s, bench_acc = timed(through_bench)
        bench_s.append(s)
        s, bare_acc = timed(lambda: bare_loop(state, proto, train, test, 4, seeds))
        bare_s.append(s)
    ratio = min(bench_s) / min(bare_s)
    print(json.dumps({
        "benchmark": "trainer_overhead_vs_bare_loop", "arch": ARCH, "size": SIZE,
        "train_images": N_TRAIN, "epochs": EPOCHS, "batch": BATCH, "cores": os.cpu_count(),
        "bench_s": round(min(bench_s), 2), "bare_s": round(min(bare_s), 2),
        "ratio": round(ratio, 3), "goal": "<= 1.10",
        "bench_accuracy": round(bench_acc, 4), "bare_accuracy": round(bare_acc, 4),
    }))
    return 0 if ratio <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
