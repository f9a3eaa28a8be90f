"""What every evaluation protocol shares: the trial result, the epoch hooks, the train
augmentation of a protocol and (TTA) prediction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from bench.config.protocols import ProtocolBase
from bench.data.augment import TrainAugment
from bench.data.loader import ImageSet, batches
from bench.train.loop import autocast

EpochHook = Callable[[str, int, float], None]
Predictor = Callable[[ImageSet], np.ndarray]
AfterEpoch = Callable[[int, Predictor], None]


@dataclass
class TrialResult:
    """What a trial produced.

    Attributes:
        metrics: test metrics (``accuracy``, ``f1_weighted``, …, per-class ``f1_<class>``).
        probs: (N_test, C) float32 predicted probabilities.
        labels: (N_test,) int64 true labels.
        max_lr: the peak lr used.
        history: per-epoch mean train loss, in order.
        lr_curve: (lrs, losses) of the LR finder, when it ran.
    """

    metrics: dict[str, float]
    probs: np.ndarray
    labels: np.ndarray
    max_lr: float
    history: list[float] = field(default_factory=list)
    lr_curve: tuple[list[float], list[float]] | None = None
    head: np.ndarray | None = None
    """(C, D + 1) final head weight with the bias as last column."""


def augment_for(p: ProtocolBase) -> TrainAugment:
    """The protocol's train augmentation (also used by TTA)."""
    return TrainAugment.of(p.augment, p.image_size)


@torch.no_grad()
def tta_probs(
    forward: Callable[[Tensor], Tensor],
    data: ImageSet,
    protocol: ProtocolBase,
    aug: TrainAugment,
    tta_gen: torch.Generator,
    device: torch.device,
) -> Tensor:
    """Probabilities (..., N, C) on the CPU: the mean of ``tta.passes`` softmaxes of
    ``forward`` (logits (..., B, C)) over train-augmented batches, or one clean pass."""
    passes = protocol.tta.passes if protocol.tta.mode == "augment" else 1
    out = []
    for x, _ in batches(data, max(protocol.batch_size, 256), device, None, drop_last=False):
        acc = None
        for _ in range(passes):
            xi = aug(x, tta_gen) if protocol.tta.mode == "augment" else x
            with autocast(device, protocol.precision):
                p = torch.softmax(forward(xi).float(), dim=-1)
            acc = p if acc is None else acc + p
        out.append((acc / passes).cpu())
    return torch.cat(out, dim=-2)


def predict(
    model: nn.Module,
    data: ImageSet,
    protocol: ProtocolBase,
    aug: TrainAugment,
    tta_gen: torch.Generator,
    device: torch.device,
) -> np.ndarray:
    """(N, C) float32 probabilities of a classifier (see :func:`tta_probs`)."""
    model.eval()
    return tta_probs(model, data, protocol, aug, tta_gen, device).numpy().astype(np.float32)
