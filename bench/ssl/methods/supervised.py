"""Supervised pre-training: cross-entropy of a linear head on a labelled source set, e.g. the
ImageNet-style step of a chain ``random → supervised(source) → barlow_twins(target)``."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from bench.ssl.methods.base import Method, MethodParams
from bench.ssl.methods.params import SupervisedParams


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
