"""SimCLR (Chen et al., 2020, "A Simple Framework for Contrastive Learning of Visual
Representations", ICML): the NT-Xent loss.

For 2B L2-normalised projections, s(i, j) = zᵢ·zⱼ / τ; each view's positive is the other view of
its image and its negatives are the other 2B − 2 projections:
    ℓᵢ = −log( exp s(i, pos(i)) / Σ_{k≠i} exp s(i, k) ),   loss = mean over the 2B views.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.ssl.methods.base import Method, MethodParams, build_projector
from bench.ssl.methods.params import SimCLRParams


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """NT-Xent of (B, D) × 2 projections → scalar (mean over the 2B views)."""
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


class SimCLR(Method):
    """SimCLR with an MLP projector."""

    Params: ClassVar[type[MethodParams]] = SimCLRParams
    views = "ssl"

    def __init__(self, feature_dim: int, params: SimCLRParams, n_classes: int | None = None):
        super().__init__(feature_dim, params, n_classes)
        self.projector: nn.Module = build_projector(feature_dim, params.projector)

    def loss(self, encoder: nn.Module, views: list[Tensor], labels: Tensor | None) -> Tensor:
        z = self.projector(encoder(torch.cat(views[:2]))).float()
        z1, z2 = z.chunk(2)
        return nt_xent(z1, z2, self.params.temperature)
