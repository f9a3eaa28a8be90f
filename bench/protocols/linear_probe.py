"""Linear probing: a linear head on the frozen encoder. Trials that differ only in their head
seed (and share the lr) train together as one HeadBank — one encoder forward for all heads,
exactly equal to separate runs (:mod:`bench.train.probe_bank`); ``cache_features`` computes the
encoder features once."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bench.config.protocols import ProtocolBase
from bench.data.loader import ImageSet
from bench.protocols.base import Protocol
from bench.train.evaluate import EpochHook, TrialResult
from bench.train.lr_choice import resolve_lr
from bench.train.probe_bank import bank_eligible, run_probe_bank
from bench.train.trial import run_trial


class LinearProbe(Protocol):
    """A HeadBank for several trials or cached features; a plain trial otherwise."""

    def bankable(self, spec: ProtocolBase, vary: Sequence[str]) -> bool:
        return bank_eligible(spec, list(vary))

    def run(self, backbone: nn.Module, spec: ProtocolBase, train: ImageSet, test: ImageSet,
            classes: list[str], seeds: list[dict[str, int]], device: torch.device,
            max_lr: float | None, on_epoch: EpochHook | None = None) -> list[TrialResult]:
        if len(seeds) == 1 and not spec.cache_features:
            return [run_trial(backbone, spec, train, test, classes, seeds[0], device, on_epoch,
                              max_lr=max_lr)]
        lr = resolve_lr(spec.lr_search, max_lr)
        if isinstance(lr, str):
            raise ValueError("a HeadBank or cache_features needs the lr before training: "
                             "search it once per cell (lr_search.per: cell)")
        return run_probe_bank(backbone, spec, train, test, classes, seeds, device, lr, on_epoch)
