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
        items: int64 (M,) rows of ``images`` that make one epoch (repeats allowed), or None
            for every row once.
    """

    images: Tensor
    labels: Tensor | None
    items: Tensor | None = None

    def __len__(self) -> int:
        return int(self.items.shape[0] if self.items is not None else self.images.shape[0])


def to_float(x: Tensor, device: torch.device) -> Tensor:
    """uint8 batch → float in [0, 1] on ``device`` (copied non-blocking, converted there)."""
    return x.to(device, non_blocking=True).float().div_(255.0)


def balanced_weights(data: ImageSet) -> Tensor:
    """Per-item sampling weights 1 / (size of the item's class): every class equally likely."""
    assert data.labels is not None
    labels = data.labels if data.items is None else data.labels[data.items]
    counts = torch.bincount(labels)
    return 1.0 / counts[labels].double()


def batches(
    data: ImageSet,
    batch_size: int,
    device: torch.device,
    gen: torch.Generator | None,
    drop_last: bool,
    weights: Tensor | None = None,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield (float images (b, 3, H, W) on device, labels (b,) or None).

    Shuffled with ``gen`` (a fresh permutation per call), or in order when ``gen`` is None.
    With ``weights`` (N,), an epoch is N draws with replacement in proportion to them
    (weighted oversampling), from ``gen``.
    """
    n = len(data)
    if weights is not None:
        order = torch.multinomial(weights, n, replacement=True, generator=gen)
    else:
        order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    stop = n - (n % batch_size) if drop_last and n >= batch_size else n
    if data.items is not None:
        order = data.items[order]
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        y = data.labels[idx].to(device, non_blocking=True) if data.labels is not None else None
        yield to_float(data.images[idx], device), y


def n_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """How many batches :func:`batches` yields for ``n`` items."""
    if drop_last and n >= batch_size:
        return n // batch_size
    return -(-n // batch_size)
