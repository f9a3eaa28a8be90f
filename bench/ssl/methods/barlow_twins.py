"""Barlow Twins (Zbontar et al., 2021, "Barlow Twins: Self-Supervised Learning via Redundancy
Reduction", ICML), with the optional sparse-head term of Haggerty & Chandra (2024, Eq. 2).

Loss on a batch of B pairs of projections z1, z2 (B, D):
    each is standardised per dimension over the batch (biased std, no epsilon — the reference code);
    C = z1ᵀ z2 / B;  L = Σᵢ (1 − Cᵢᵢ)² + λ Σ_{i≠j} Cᵢⱼ²   (a plain sum; the paper: λ = 1/8192).
Sparse head: + coefficient × Σⱼ ‖W[:, j]‖₂ over the columns of the projector's last Linear weight
W (an L2,1 group norm; bias not penalised; the paper: 0.01).
Both views pass through the encoder and projector as one batch of 2B (BatchNorm statistics shared).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from bench.ssl.methods.base import Method, MethodParams, build_projector
from bench.ssl.methods.params import BarlowTwinsParams


def _standardise(z: Tensor) -> Tensor:
    """(B, D) → per-dimension zero mean, unit biased std over the batch."""
    return (z - z.mean(0)) / z.std(0, unbiased=False)


def barlow_twins_loss(z1: Tensor, z2: Tensor, lambda_offdiag: float) -> Tensor:
    """Barlow Twins loss of projections (B, D) × 2 → scalar (plain sum, no scaling)."""
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"expected two (B, D) tensors of one shape, got {tuple(z1.shape)} "
                         f"and {tuple(z2.shape)}")
    if z1.shape[0] < 2:
        raise ValueError("Barlow Twins needs a batch of at least 2 to standardise")
    c = _standardise(z1).T @ _standardise(z2) / z1.shape[0]
    diag = torch.diagonal(c)
    on_diag = (1 - diag).pow(2).sum()
    off_diag = c.pow(2).sum() - diag.pow(2).sum()
    return on_diag + lambda_offdiag * off_diag


def column_l21(weight: Tensor) -> Tensor:
    """Σⱼ ‖W[:, j]‖₂ of a Linear weight W (out, in): the sum of the L2 norms of its columns."""
    return weight.norm(p=2, dim=0).sum()


class BarlowTwins(Method):
    """Barlow Twins with an MLP projector and optional sparse-head penalty."""

    Params: ClassVar[type[MethodParams]] = BarlowTwinsParams
    views = "ssl"

    def __init__(self, feature_dim: int, params: BarlowTwinsParams, n_classes: int | None = None):
        super().__init__(feature_dim, params, n_classes)
        self.projector = build_projector(feature_dim, params.projector)

    def last_linear(self) -> nn.Linear:
        """The projector's last Linear (the sparse-head term acts on its weight)."""
        return [m for m in self.projector if isinstance(m, nn.Linear)][-1]

    def loss(self, encoder: nn.Module, views: list[Tensor], labels: Tensor | None) -> Tensor:
        x1, x2 = views
        z = self.projector(encoder(torch.cat([x1, x2])))
        z1, z2 = z.float().chunk(2)
        return barlow_twins_loss(z1, z2, self.params.lambda_offdiag) + self.extra_loss()

    def extra_loss(self) -> Tensor:
        if self.params.sparse_head == 0:
            return torch.zeros((), device=self.last_linear().weight.device)
        return self.params.sparse_head * column_l21(self.last_linear().weight)
