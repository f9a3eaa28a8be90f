"""Seeded batches from an in-memory uint8 image tensor, converted to float on the device."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ImageSet:
    """Decoded images and labels held in memory.

    Attributes:
        images: uint8 (N, 3, H, W), pinned when a GPU is used.
        labels: int64 (N,), or None for unlabelled data.
    """

    images: Tensor
    labels: Tensor | None

    def __len__(self) -> int:
        return int(self.images.shape[0])


def to_float(x: Tensor, device: torch.device) -> Tensor:
    """uint8 batch → float in [0, 1] on ``device`` (copied non-blocking, converted there)."""
    return x.to(device, non_blocking=True).float().div_(255.0)


def batches(
    data: ImageSet,
    batch_size: int,
    device: torch.device,
    gen: torch.Generator | None,
    drop_last: bool,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield (float images (b, 3, H, W) on device, labels (b,) or None).

    Shuffled with ``gen`` (a fresh permutation per call), or in order when ``gen`` is None.
    """
    n = len(data)
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    stop = n - (n % batch_size) if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        y = data.labels[idx].to(device, non_blocking=True) if data.labels is not None else None
        yield to_float(data.images[idx], device), y


def n_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """How many batches :func:`batches` yields for ``n`` items."""
    if drop_last and n >= batch_size:
        return n // batch_size
    return -(-n // batch_size)
