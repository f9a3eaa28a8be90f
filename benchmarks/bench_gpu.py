"""GPU throughput (figure f): ResNet-50 fine-tuning and Barlow Twins further pre-training.

Fine-tuning at 224 px through bench's own trial loop (``run_trial``: uint8 batches gathered into
pinned buffers and copied on a side stream one batch ahead, augmentation on the device, bf16
autocast, channels_last, cudnn.benchmark, fused AdamW), optionally with ``torch.compile``, against
the same loop in fp32 (``precision: fp32``) NCHW; and a Barlow Twins stage (``run_stage``,
last-block unfreezing as in the paper) in bf16 + channels_last vs fp32. Throughput is images/s of
the second epoch (the first pays cuDNN autotuning and compilation).

Two views of whether the data pipeline starves the GPU: ``gpu_busy`` is the throughput of the
loop fed from host memory over that of the identical loop fed from images already on the GPU
(1.0: the host-to-device pipeline costs nothing); ``gpu_util_nvml`` is NVML's mean utilization
(share of time a kernel ran) over the second epoch, sampled every 20 ms. ``augment_share`` is the
augmentation's time alone over the epoch's.

Without CUDA it prints ``{"skipped": …}`` and exits 0; ``--smoke`` runs the whole script on the
CPU with a tiny network and images (what the tests do). Each figure is printed to stderr as soon
as it is measured (a run cut short keeps what it has); the last stdout line is the whole JSON.

    python benchmarks/bench_gpu.py            # on a GPU machine
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Callable

import torch

from bench.config.protocols import parse_protocol
from bench.config.schema import StageSpec
from bench.data.loader import ImageSet
from bench.models.registry import seeded_backbone
from bench.seeds import trial_seeds
from bench.ssl.methods import resolve_method
from bench.ssl.pretrain import run_stage
from bench.train import loop
from bench.train.evaluate import augment_for
from bench.train.trial import run_trial


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def nchw():
    """bench's trial and stage loops without channels_last (the baseline runs them with
    ``precision: fp32`` as well): the two modules' own references to ``prepare`` are swapped."""
    import bench.ssl.pretrain as pre
    import bench.train.trial as tri

    saved = [(m, m.prepare) for m in (tri, pre)]
    for m, _ in saved:
        m.prepare = lambda module, device: module.to(device)
    try:
        yield
    finally:
        for m, prepare in saved:
            m.prepare = prepare


def epoch_times(fn, after_epoch: Callable[[int], None] | None = None) -> list[float]:
    """Run ``fn(on_epoch)``; return the wall time of each epoch (``after_epoch(epoch)`` is
    called at each epoch's end)."""
    marks = [time.perf_counter()]

    def on_epoch(phase: str, epoch: int, loss: float) -> None:
        marks.append(time.perf_counter())
        if after_epoch is not None:
            after_epoch(epoch)

    fn(on_epoch)
    return [b - a for a, b in itertools.pairwise(marks)]


class NvmlBusy:
    """Mean NVML "GPU utilization" (the share of time a kernel was running) sampled every 20 ms
    while the context is open; None where NVML (``pynvml``) is missing."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()

    def __enter__(self) -> NvmlBusy:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        except Exception:
            return self

        def sample() -> None:
            while not self._stop.wait(0.02):
                self.samples.append(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()

    def epoch_ended(self, epoch: int) -> None:
        """Keep the second epoch's samples only (the first pays cuDNN autotuning)."""
        if epoch == 0:
            self.samples.clear()
        else:
            self.stop()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if hasattr(self, "_thread"):
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return round(sum(self.samples) / len(self.samples) / 100, 3) if self.samples else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run of the whole script")
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile figure")
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
    proto = parse_protocol(dict(
        kind="fine_tune", train="d:train", test="d:test", epochs=2, warmup_epochs=0,
        batch_size=batch, image_size=size, lr_search={"method": "fixed", "lr": 1e-4},
        tta={"mode": "clean"}))
    steps = n // batch

    def finetune(on_epoch, data: ImageSet = train, precision: str = "auto") -> None:
        spec = proto.model_copy(update={"precision": precision})
        run_trial(seeded_backbone(arch, 0), spec, data, test, classes, seeds, device, on_epoch)

    out: dict[str, object] = {"benchmark": "gpu_throughput", "device": (
        torch.cuda.get_device_name() if device.type == "cuda" else "cpu (smoke)"),
        "arch": arch, "size": size, "batch": batch, "images": n, "cores": os.cpu_count()}

    def record(key: str, value: object) -> None:
        out[key] = value
        print(json.dumps({key: value}), file=sys.stderr, flush=True)

    record("torch", torch.__version__)
    with NvmlBusy() as busy:
        fast = epoch_times(finetune, busy.epoch_ended)[-1]
    record("finetune_bf16_cl_img_s", round(n / fast))
    if device.type == "cuda":
        record("gpu_util_nvml", busy.mean)
        # the same loop fed from images already on the GPU: what the host pipeline costs
        resident = ImageSet(images.to(device), labels.to(device))
        record("finetune_device_resident_img_s",
               round(n / epoch_times(lambda hook: finetune(hook, resident))[-1]))
        del resident
    else:
        out["finetune_device_resident_img_s"] = out["finetune_bf16_cl_img_s"]
    record("gpu_busy", round(min(1.0, out["finetune_bf16_cl_img_s"]
                                 / out["finetune_device_resident_img_s"]), 3))
    with nchw():
        record("finetune_fp32_nchw_img_s",
               round(n / epoch_times(lambda hook: finetune(hook, precision="fp32"))[-1]))
    record("finetune_speedup", round(out["finetune_bf16_cl_img_s"]
                                     / out["finetune_fp32_nchw_img_s"], 2))
    # the augmentation alone, for the same number of steps on a batch already on the device
    aug = augment_for(proto)
    x = images[:batch].to(device).float().div(255)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        aug(x, gen)
    _sync(device)
    record("augment_share", round((time.perf_counter() - t0) / fast, 3))
    bt = StageSpec.model_validate(dict(
        method="barlow_twins", data=["d:train"], epochs=2, warmup_epochs=0,
        unfreeze="last_block", batch_size=batch, image_size=size,
        lr_search={"method": "fixed", "lr": 1e-4},
        params={"projector": {"dims": [8192, 8192, 8192] if not args.smoke else [64, 64]}}))
    method = resolve_method("barlow_twins")

    def stage(on_epoch, precision: str = "auto") -> None:
        spec = bt.model_copy(update={"precision": precision})
        run_stage(seeded_backbone(arch, 0), spec, method, ImageSet(images, None), None, device,
                  None, on_epoch)

    record("bt_bf16_cl_img_s", round(n / epoch_times(stage)[-1]))
    with nchw():
        record("bt_fp32_nchw_img_s",
               round(n / epoch_times(lambda hook: stage(hook, precision="fp32"))[-1]))
    if not args.no_compile:  # last: compiling ResNet-50 takes the longest
        loop.set_compile(True)
        try:
            record("finetune_bf16_cl_compile_img_s", round(n / epoch_times(finetune)[-1]))
        finally:
            loop.set_compile(False)
    out["goal"] = ">= 2500 img/s fine-tuning ResNet-50 at 224 px on one H100, gpu_busy >= 0.9"
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
