"""SimSiam (Chen & He, 2021, "Exploring Simple Siamese Representation Learning", CVPR) as a bench
pre-training method: the worked example of docs/new-ssl-method.md.

Two views pass through the encoder and a projector (z); a predictor maps z to p; the loss is the
symmetrised negative cosine similarity with a stop-gradient on the target side:
    L = −½ [cos(p1, sg(z2)) + cos(p2, sg(z1))]
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from bench.ssl.methods.base import Method, MethodParams, ProjectorSpec, build_projector


class SimSiamParams(MethodParams):
    """SimSiam settings (the paper: 2048-d projector, 512-d predictor bottleneck)."""

    projector: ProjectorSpec = Field(default_factory=lambda: ProjectorSpec(dims=[2048, 2048, 2048]))
    predictor: ProjectorSpec = Field(default_factory=lambda: ProjectorSpec(dims=[512, 2048]))


def simsiam_loss(p: Tensor, z: Tensor) -> Tensor:
    """−cos(p, sg(z)), mean over the batch."""
    return -F.cosine_similarity(p, z.detach(), dim=1).mean()


class SimSiam(Method):
    """SimSiam: projector + predictor, stop-gradient, no negatives, no momentum encoder."""

    Params: ClassVar[type[MethodParams]] = SimSiamParams
    views = "ssl"

    def __init__(self, feature_dim: int, params: SimSiamParams, n_classes: int | None = None):
        super().__init__(feature_dim, params, n_classes)
        self.projector: nn.Module = build_projector(feature_dim, params.projector)
        self.predictor: nn.Module = build_projector(params.projector.dims[-1], params.predictor)

    def loss(self, encoder: nn.Module, views: list[Tensor], labels: Tensor | None) -> Tensor:
        z1, z2 = self.projector(encoder(torch.cat(views[:2]))).float().chunk(2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return 0.5 * (simsiam_loss(p1, z2) + simsiam_loss(p2, z1))
