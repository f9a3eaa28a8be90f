"""Seeded batches from an in-memory uint8 image tensor, converted to float on the device.

On CUDA the next batch is gathered into a pinned buffer and copied on a side stream while the
current one trains (double buffering), so host-to-device copies overlap compute instead of
stalling the GPU between steps.
"""

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
    chunks = [order[start:start + batch_size] for start in range(0, stop, batch_size)]
    if device.type == "cuda" and not data.images.is_cuda:
        yield from _prefetched(data, chunks, batch_size, device)
        return
    for idx in chunks:
        if data.images.is_cuda:  # images already on the GPU: index there, without a host sync
            idx = idx.to(data.images.device, non_blocking=True)
        y = data.labels[idx].to(device, non_blocking=True) if data.labels is not None else None
        yield to_float(data.images[idx], device), y


class _Slot:
    """A pinned host buffer for one batch and the event that marks its copy done."""

    def __init__(self, data: ImageSet, batch_size: int):
        self.x = torch.empty((batch_size, *data.images.shape[1:]), dtype=data.images.dtype,
                             pin_memory=True)
        self.y = (torch.empty(batch_size, dtype=data.labels.dtype, pin_memory=True)
                  if data.labels is not None else None)
        self.copied: torch.cuda.Event | None = None


def _prefetched(data: ImageSet, chunks: list[Tensor], batch_size: int,
                device: torch.device) -> Iterator[tuple[Tensor, Tensor | None]]:
    """CUDA batches with the next one in flight: gather rows into one of two pinned buffers,
    copy it on a side stream, and make the compute stream wait for that copy only."""
    main = torch.cuda.current_stream(device)
    side = torch.cuda.Stream(device)
    slots = [_Slot(data, batch_size), _Slot(data, batch_size)]

    def stage(i: int) -> tuple[Tensor, Tensor | None, torch.cuda.Event]:
        slot, idx = slots[i % 2], chunks[i]
        if slot.copied is not None:
            slot.copied.synchronize()  # the copy out of this buffer two batches ago
        b = idx.shape[0]
        torch.index_select(data.images, 0, idx, out=slot.x[:b])
        if slot.y is not None:
            torch.index_select(data.labels, 0, idx, out=slot.y[:b])
        with torch.cuda.stream(side):
            x = slot.x[:b].to(device, non_blocking=True)
            y = slot.y[:b].to(device, non_blocking=True) if slot.y is not None else None
            slot.copied = torch.cuda.Event()
            slot.copied.record(side)
        return x, y, slot.copied

    pending = stage(0) if chunks else None
    for i in range(len(chunks)):
        x, y, copied = pending
        pending = stage(i + 1) if i + 1 < len(chunks) else None
        main.wait_event(copied)
        x.record_stream(main)  # allocated on the side stream, used on the main one
        if y is not None:
            y.record_stream(main)
        yield x.float().div_(255.0), y


def n_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """How many batches :func:`batches` yields for ``n`` items."""
    if drop_last and n >= batch_size:
        return n // batch_size
    return -(-n // batch_size)
