"""GPU throughput (figure f): ResNet-50 fine-tuning and Barlow Twins further pre-training.

Fine-tuning at 224 px through bench's own trial loop (``run_trial``: pinned uint8 batches copied
non-blocking, kornia-style augmentation on the device, bf16 autocast, channels_last,
cudnn.benchmark), optionally with ``torch.compile``, against the same loop in fp32 NCHW; and a
Barlow Twins stage (``run_stage``, last-block unfreezing as in the paper) in bf16 + channels_last
vs fp32. Throughput is images/s of the second epoch (the first pays cuDNN autotuning and
compilation). "GPU busy" is the time the same number of steps takes on one batch already on the
GPU, over the epoch's time: 1.0 means the data pipeline never made the GPU wait.

Without CUDA it prints ``{"skipped": …}`` and exits 0; ``--smoke`` runs the whole script on the
CPU with a tiny network and images (what the tests do). Prints one JSON line.

    python benchmarks/bench_gpu.py            # on a GPU machine
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

from bench.config.schema import ProtocolSpec, StageSpec
from bench.data.loader import ImageSet
from bench.models.heads import Classifier
from bench.models.registry import seeded_backbone
from bench.seeds import trial_seeds
from bench.ssl.methods import resolve_method
from bench.ssl.pretrain import run_stage
from bench.train import loop
from bench.train.trial import augment_for, run_trial


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def fp32_nchw():
    """bench's trial and stage loops with bf16 autocast and channels_last switched off (the
    baseline): the two modules' own references to ``autocast``/``prepare`` are swapped."""
    import bench.ssl.pretrain as pre
    import bench.train.trial as tri

    saved = [(m, m.autocast, m.prepare) for m in (tri, pre)]
    for m, _, _ in saved:
        m.autocast = lambda device: contextlib.nullcontext()
        m.prepare = lambda module, device: module.to(device)
    try:
        yield
    finally:
        for m, autocast, prepare in saved:
            m.autocast, m.prepare = autocast, prepare


def epoch_times(fn) -> list[float]:
    """Run ``fn(on_epoch)``; return the wall time of each epoch."""
    marks = [time.perf_counter()]

    def on_epoch(phase: str, epoch: int, loss: float) -> None:
        marks.append(time.perf_counter())

    fn(on_epoch)
    return [b - a for a, b in itertools.pairwise(marks)]


def compute_only_seconds(arch: str, size: int, batch: int, steps: int, device: torch.device,
                         amp: bool) -> float:
    """``steps`` fine-tune steps on one batch already on the device (no data pipeline)."""
    backbone = seeded_backbone(arch, 0)
    model = Classifier(backbone, torch.nn.Linear(backbone.feature_dim, 8)).to(device)
    if amp and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, size, size, device=device)
    y = torch.randint(0, 8, (batch,), device=device)
    ctx = loop.autocast(device) if amp else contextlib.nullcontext()
    for i in range(steps + 3):
        if i == 3:
            _sync(device)
            t0 = time.perf_counter()
        with ctx:
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run of the whole script")
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    if args.smoke:
        device, arch, size, n, batch = torch.device("cpu"), "tiny_resnet_w8", 32, 64, 16
    elif not torch.cuda.is_available():
        print(json.dumps({"benchmark": "gpu_throughput", "skipped": "no CUDA device"}))
        return 0
    else:
        device, arch, size, n, batch = torch.device("cuda"), "resnet50", 224, args.images, \
            args.batch
        torch.backends.cudnn.benchmark = True
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 8, (n,), generator=gen)
    if device.type == "cuda":
        images = images.pin_memory()
    train = ImageSet(images, labels)
    test = ImageSet(images[:batch], labels[:batch])
    classes = [f"c{i}" for i in range(8)]
    seeds = trial_seeds(0, 0, ["head"])
    proto = ProtocolSpec.model_validate(dict(
        kind="fine_tune", train="d:train", test="d:test", epochs=2, warmup_epochs=0,
        batch_size=batch, image_size=size, lr_search={"method": "fixed", "lr": 1e-4},
        tta={"mode": "clean"}))
    steps = n // batch

    def finetune(on_epoch) -> None:
        run_trial(seeded_backbone(arch, 0), proto, train, test, classes, seeds, device, on_epoch)

    out: dict[str, object] = {"benchmark": "gpu_throughput", "device": (
        torch.cuda.get_device_name() if device.type == "cuda" else "cpu (smoke)"),
        "arch": arch, "size": size, "batch": batch, "images": n, "cores": os.cpu_count()}
    fast = epoch_times(finetune)[-1]
    out["finetune_bf16_cl_img_s"] = round(n / fast)
    loop.set_compile(True)
    try:
        out["finetune_bf16_cl_compile_img_s"] = round(n / epoch_times(finetune)[-1])
    finally:
        loop.set_compile(False)
    with fp32_nchw():
        out["finetune_fp32_nchw_img_s"] = round(n / epoch_times(finetune)[-1])
    out["finetune_speedup"] = round(out["finetune_bf16_cl_img_s"]
                                    / out["finetune_fp32_nchw_img_s"], 2)
    # the same steps on a batch already on the device, without augmentation or copies
    aug = augment_for(proto)
    x = images[:batch].to(device).float().div(255)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        aug(x, gen)
    _sync(device)
    out["augment_share"] = round((time.perf_counter() - t0) / fast, 3)
    out["gpu_busy"] = round(min(1.0, compute_only_seconds(arch, size, batch, steps, device,
                                                          True) / fast), 3)
    bt = StageSpec.model_validate(dict(
        method="barlow_twins", data=["d:train"], epochs=2, warmup_epochs=0,
        unfreeze="last_block", batch_size=batch, image_size=size,
        lr_search={"method": "fixed", "lr": 1e-4},
        params={"projector": {"dims": [8192, 8192, 8192] if not args.smoke else [64, 64]}}))
    method = resolve_method("barlow_twins")

    def stage(on_epoch) -> None:
        run_stage(seeded_backbone(arch, 0), bt, method, ImageSet(images, None), None, device,
                  None, on_epoch)

    out["bt_bf16_cl_img_s"] = round(n / epoch_times(stage)[-1])
    with fp32_nchw():
        out["bt_fp32_nchw_img_s"] = round(n / epoch_times(stage)[-1])
    out["goal"] = ">= 2500 img/s fine-tuning ResNet-50 at 224 px on one H100, gpu_busy >= 0.9"
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
