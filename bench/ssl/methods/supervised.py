"""Supervised pre-training: cross-entropy of a linear head on a labelled source set, e.g. the
ImageNet-style step of a chain ``random → supervised(source) → barlow_twins(target)``."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from bench.ssl.methods.base import Method, MethodParams


class SupervisedParams(MethodParams):
    """Supervised pre-training settings."""

    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Cross-entropy label smoothing.")


class Supervised(Method):
    """Linear head + cross-entropy (mean over the batch)."""

    Params: ClassVar[type[MethodParams]] = SupervisedParams
    views = "train"
    needs_labels = True

    def __init__(self, feature_dim: int, params: SupervisedParams, n_classes: int | None = None):
        super().__init__(feature_dim, params, n_classes)
        if not n_classes:
            raise ValueError("supervised pre-training needs labelled data with ≥ 2 classes")
        self.head = nn.Linear(feature_dim, n_classes)

    def loss(self, encoder: nn.Module, views: list[Tensor], labels: Tensor | None) -> Tensor:
        if labels is None:
            raise ValueError("supervised pre-training got a batch without labels")
        logits = self.head(encoder(views[0]))
        return F.cross_entropy(logits.float(), labels,
                               label_smoothing=self.params.label_smoothing)
