"""Pixels of dataset parts for training, served from the decoded cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.config.names import parse_ref
from bench.data.cache import CachedPart, DecodedCache
from bench.data.loader import ImageSet


class ImageStore:
    """Decoded parts of a plan's datasets as torch tensors (one decode per part and size)."""

    def __init__(self, datasets: dict, cache_dir: Path, pin: bool = False,
                 say: Callable[[str], None] | None = None):
        self.datasets = datasets
        self.cache = DecodedCache(cache_dir)
        self.pin = pin
        self.say = say or (lambda _m: None)
        self._parts: dict[tuple[str, str | None, int], CachedPart] = {}
        self._sets: dict[tuple[str, str | None, int], ImageSet] = {}

    def _part(self, ref: str, size: int) -> CachedPart:
        ds_name, part = parse_ref(ref)
        key = (ds_name, part, size)
        if key not in self._parts:
            ds = self.datasets[ds_name]
            entry = self.cache.folder / f"{self.cache.key(ds, part, size)}.json"
            last = [-1]

            def progress(done: int, total: int) -> None:
                pct = 100 * done // total
                if pct >= last[0] + 10 or done == total:
                    last[0] = pct
                    self.say(f"  decoding {ref} at {size}px: {done}/{total} ({pct}%)")

            self._parts[key] = self.cache.get(ds, part, size,
                                              None if entry.exists() else progress)
        return self._parts[key]

    def pixel_hashes(self, ref: str) -> list[str]:
        """Decoded-pixel hashes of a part's records (from any cached size of it)."""
        ds_name, part = parse_ref(ref)
        for (d, p, _), cached in self._parts.items():
            if d == ds_name and p == part:
                return cached.pixel_hashes
        return self._part(ref, 32).pixel_hashes

    def get(self, ref: str, size: int, labelled: bool = True) -> ImageSet:
        """uint8 (N, 3, size, size) images (+ labels) of ``dataset:part``."""
        ds_name, part = parse_ref(ref)
        key = (ds_name, part, size)
        if key not in self._sets:
            ds = self.datasets[ds_name]
            x = torch.from_numpy(np.asarray(self._part(ref, size).images))
            if self.pin:
                x = x.pin_memory()
            y = torch.from_numpy(ds.label_indices(ds.part(part)))
            self._sets[key] = ImageSet(x, y)
        out = self._sets[key]
        return out if labelled else ImageSet(out.images, None)

    def union(self, refs: list[str], repeat: list[int] | None, size: int,
              labelled: bool) -> ImageSet:
        """Parts concatenated once; each part's rows listed ``repeat`` times per epoch."""
        reps = repeat or [1] * len(refs)
        sets = [self.get(r, size) for r in refs]
        if len(sets) == 1 and reps[0] == 1:
            return sets[0] if labelled else ImageSet(sets[0].images, None)
        items, offset = [], 0
        for s, k in zip(sets, reps, strict=True):
            items += [torch.arange(offset, offset + len(s))] * k
            offset += len(s)
        images = torch.cat([s.images for s in sets])
        labels = torch.cat([s.labels for s in sets]) if labelled else None
        return ImageSet(images, labels, torch.cat(items))
