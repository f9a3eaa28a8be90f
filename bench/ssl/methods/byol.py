"""BYOL (Grill et al., 2020, "Bootstrap Your Own Latent", NeurIPS).

An online network (encoder → projector → predictor) predicts the projection of the other view by
a target network (encoder → projector) that is an exponential moving average of the online one:
    loss = Σ_views 2 − 2·cos(q_online(view a), z_target(view b))   (symmetrised, mean over B)
    target ← τ·target + (1 − τ)·online after every step, with
    τ_k = 1 − (1 − τ_base)·(cos(π k / K) + 1) / 2   (τ_base = 0.996, K = total steps).
The target's BatchNorm layers run in the same mode as the online ones; it receives no gradient.
"""

from __future__ import annotations

import copy
import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.ssl.methods.base import Method, MethodParams, build_projector
from bench.ssl.methods.params import BYOLParams


def byol_loss(p: Tensor, z: Tensor) -> Tensor:
    """2 − 2·cos(p, z), mean over the batch; ``z`` is treated as a constant."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=1)).mean()


class BYOL(Method):
    """BYOL: online projector + predictor, EMA target encoder + projector."""

    Params: ClassVar[type[MethodParams]] = BYOLParams
    views = "ssl"

    def __init__(self, feature_dim: int, params: BYOLParams, n_classes: int | None = None):
        super().__init__(feature_dim, params, n_classes)
        self.projector: nn.Module = build_projector(feature_dim, params.projector)
        self.predictor: nn.Module = build_projector(params.projector.dims[-1], params.predictor)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.target_encoder: nn.Module | None = None
        self.total_steps = 1
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def bind(self, encoder: nn.Module, total_steps: int) -> None:
        """Create the target encoder as a copy of the online one."""
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.total_steps = max(total_steps, 1)

    def tau(self) -> float:
        """Current EMA coefficient (cosine schedule from τ_base to 1)."""
        k = min(int(self.step), self.total_steps)
        return 1 - (1 - self.params.momentum) * (math.cos(math.pi * k / self.total_steps) + 1) / 2

    def loss(self, encoder: nn.Module, views: list[Tensor], labels: Tensor | None) -> Tensor:
        if self.target_encoder is None:
            raise RuntimeError("BYOL.bind(encoder, total_steps) must be called before training")
        x = torch.cat(views[:2])
        q1, q2 = self.predictor(self.projector(encoder(x))).float().chunk(2)
        with torch.no_grad():
            for online, target in zip(encoder.modules(), self.target_encoder.modules(),
                                      strict=True):
                target.training = online.training  # frozen layers stay frozen in the target
            z1, z2 = self.target_projector(self.target_encoder(x)).float().chunk(2)
        return byol_loss(q1, z2) + byol_loss(q2, z1)

    @torch.no_grad()
    def after_step(self, encoder: nn.Module) -> None:
        """EMA update of the target from the online encoder and projector."""
        assert self.target_encoder is not None
        tau = self.tau()
        for online, target in ((encoder, self.target_encoder),
                               (self.projector, self.target_projector)):
            for po, pt in zip(online.parameters(), target.parameters(), strict=True):
                pt.mul_(tau).add_(po.detach(), alpha=1 - tau)
            for bo, bt in zip(online.buffers(), target.buffers(), strict=True):
                bt.copy_(bo)
        self.step += 1
