"""VICReg (Bardes, Ponce & LeCun, 2022, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR), as in facebookresearch/vicreg.

For projections z1, z2 (B, D):
    invariance  = MSE(z1, z2)                               (mean over B·D)
    variance    = ½ Σ_b mean_d relu(1 − sqrt(Var_d(z_b) + ε))   (unbiased variance, ε = 1e-4)
    covariance  = Σ_b  Σ_{i≠j} Cov(z_b)ᵢⱼ² / D              (Cov with the 1/(B−1) factor)
    loss = 25·invariance + 25·variance + 1·covariance   (the paper's coefficients)
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.ssl.methods.base import Method, MethodParams, build_projector
from bench.ssl.methods.params import VICRegParams


def _off_diagonal_sq_sum(c: Tensor) -> Tensor:
    return c.pow(2).sum() - torch.diagonal(c).pow(2).sum()


def vicreg_loss(z1: Tensor, z2: Tensor, sim: float = 25.0, std: float = 25.0, cov: float = 1.0,
                eps: float = 1e-4) -> Tensor:
    """VICReg loss of (B, D) projections → scalar."""
    b, d = z1.shape
    if b < 2:
        raise ValueError("VICReg needs a batch of at least 2")
    inv = F.mse_loss(z1, z2)
    z1c, z2c = z1 - z1.mean(0), z2 - z2.mean(0)
    std1 = torch.sqrt(z1c.var(0) + eps)
    std2 = torch.sqrt(z2c.var(0) + eps)
    var = F.relu(1 - std1).mean() / 2 + F.relu(1 - std2).mean() / 2
    c1 = z1c.T @ z1c / (b - 1)
    c2 = z2c.T @ z2c / (b - 1)
    covariance = _off_diagonal_sq_sum(c1) / d + _off_diagonal_sq_sum(c2) / d
    return sim * inv + std * var + cov * covariance


class VICReg(Method):
    """VICReg with an MLP expander."""

    Params: ClassVar[type[MethodParams]] = VICRegParams
    views = "ssl"

    def __init__(self, feature_dim: int, params: VICRegParams, n_classes: int | None = None):
        super().__init__(feature_dim, params, n_classes)
        self.projector: nn.Module = build_projector(feature_dim, params.projector)

    def loss(self, encoder: nn.Module, views: list[Tensor], labels: Tensor | None) -> Tensor:
        z = self.projector(encoder(torch.cat(views[:2]))).float()
        z1, z2 = z.chunk(2)
        p = self.params
        return vicreg_loss(z1, z2, p.sim_coeff, p.std_coeff, p.cov_coeff, p.eps)
