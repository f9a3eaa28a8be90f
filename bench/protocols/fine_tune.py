"""Fine-tuning (the paper's protocol): a head-only warm-up, then the whole network with 1cycle
(see :func:`bench.train.trial.run_trial`)."""

from __future__ import annotations

import torch
from torch import nn

from bench.config.protocols import ProtocolBase
from bench.data.loader import ImageSet
from bench.protocols.base import Protocol
from bench.train.evaluate import EpochHook, TrialResult
from bench.train.trial import run_trial


class FineTune(Protocol):
    """One trial at a time: every trial trains its own copy of the encoder."""

    def run(self, backbone: nn.Module, spec: ProtocolBase, train: ImageSet, test: ImageSet,
            classes: list[str], seeds: list[dict[str, int]], device: torch.device,
            max_lr: float | None, on_epoch: EpochHook | None = None) -> list[TrialResult]:
        (one,) = seeds
        return [run_trial(backbone, spec, train, test, classes, one, device, on_epoch,
                          max_lr=max_lr)]
