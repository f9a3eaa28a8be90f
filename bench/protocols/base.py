"""What a protocol runner is: it trains and tests trials of one cell from one encoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bench.config.protocols import ProtocolBase
from bench.data.loader import ImageSet
from bench.train.evaluate import EpochHook, TrialResult


class Protocol:
    """A protocol kind's runner.

    :meth:`run` gets the cell's encoder (reset to the cell's weights before each call), the
    train and test images at ``spec.image_size``, and one seed dict per trial (one, unless
    :meth:`bankable` said the trials can be trained together); it returns one result per trial.
    ``max_lr`` is the trial's peak lr when it is known before training (fixed, or searched once
    for the cell or in an optuna study), None when the protocol searches it inside the trial.
    """

    def bankable(self, spec: ProtocolBase, vary: Sequence[str]) -> bool:
        """Whether several trials of a cell train together, exactly as they would alone."""
        return False

    def run(self, backbone: nn.Module, spec: ProtocolBase, train: ImageSet, test: ImageSet,
            classes: list[str], seeds: list[dict[str, int]], device: torch.device,
            max_lr: float | None, on_epoch: EpochHook | None = None) -> list[TrialResult]:
        raise NotImplementedError
