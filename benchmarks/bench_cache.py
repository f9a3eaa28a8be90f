"""Decoded cache vs a torchvision ImageFolder + PIL DataLoader, at 64×64.

On HAM10000 (10,015 JPEGs at 200×150) when ``BENCH_SHARED_DATA`` names a folder holding
``ham10000/``; otherwise on 6,000 synthetic 192 px JPEGs written to a temporary folder. Both sides
produce the same float tensors (the same decode and the same resize + centre crop); one epoch of
shuffled batches of 64 is timed for each, after the cache is built. Prints one JSON line.

    BENCH_SHARED_DATA=/path/to/data python benchmarks/bench_cache.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from bench.config.schema import DatasetSpec
from bench.data.cache import DecodedCache, to_square
from bench.data.dataset import build_dataset
from bench.data.loader import ImageSet, batches

SIZE, BATCH = 64, 64


def _pil_to_tensor(img) -> torch.Tensor:
    return torch.from_numpy(to_square(img, SIZE, "crop")).float().div_(255.0)


def main() -> int:
    root = os.environ.get("BENCH_SHARED_DATA")
    with tempfile.TemporaryDirectory() as tmp:
        if root and (Path(root) / "ham10000").is_dir():
            ham = Path(root) / "ham10000"
            source = "HAM10000 (200x150 JPEG)"
            spec = DatasetSpec.model_validate(dict(
                format="ham10000", root=str(ham / "images"),
                labels=str(ham / "HAM10000_metadata.csv"), split={"fractions": {"all": 1.0}}))
            files = ham / "images"
        else:
            from bench.config.schema import SyntheticSpec
            from bench.data.synthetic import write_folder

            source = "synthetic (192 px JPEG; set BENCH_SHARED_DATA for HAM10000)"
            syn = Path(tmp) / "syn"
            labels = write_folder(SyntheticSpec(n_classes=7, n_images=6000, image_size=192,
                                                seed=0), syn)
            spec = DatasetSpec.model_validate(dict(format="csv", labels=str(labels),
                                                   split={"fractions": {"all": 1.0}}))
            files = syn
        ds = build_dataset("ham", spec)
        t0 = time.perf_counter()
        cached = DecodedCache(Path(tmp) / "cache").get(ds, "all", SIZE)
        build_s = time.perf_counter() - t0
        data = ImageSet(torch.from_numpy(np.asarray(cached.images)),
                        torch.from_numpy(ds.label_indices(ds.part("all"))))
        t0 = time.perf_counter()
        n = 0
        for x, _ in batches(data, BATCH, torch.device("cpu"), torch.Generator().manual_seed(0),
                            drop_last=False):
            n += x.shape[0]
        cache_s = time.perf_counter() - t0

        tree = Path(tmp) / "tree"  # ImageFolder layout: class folders of links
        for rel, label in zip(ds.records["rel"], ds.records["label"], strict=True):
            (tree / label).mkdir(parents=True, exist_ok=True)
            (tree / label / Path(rel).name).symlink_to(files / rel)
        folder = ImageFolder(str(tree), transform=_pil_to_tensor)
        loader = DataLoader(folder, batch_size=BATCH, shuffle=True, num_workers=2,
                            generator=torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        m = 0
        for x, _ in loader:
            m += x.shape[0]
        pil_s = time.perf_counter() - t0

        # the same tensors: compare a sample of images by file name
        by_name = {Path(p).name: i for i, (p, _) in enumerate(folder.samples)}
        ids = [Path(r).name for r in ds.records["rel"]]
        for i in range(0, len(ids), 997):
            a = data.images[i].float() / 255
            b = folder[by_name[ids[i]]][0]
            assert torch.equal(a, b), ids[i]
    print(json.dumps({
        "benchmark": "decoded_cache_vs_pil_dataloader", "source": source, "images": n,
        "size": SIZE,
        "batch": BATCH, "cores": os.cpu_count(), "cache_build_s": round(build_s, 2),
        "cache_epoch_s": round(cache_s, 3), "pil_dataloader_epoch_s": round(pil_s, 3),
        "speedup": round(pil_s / cache_s, 1), "goal": ">= 5", "same_tensors": True,
        "pil_images": m,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
