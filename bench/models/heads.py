"""Classification heads and the input normalisation."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x − mean) / std per channel, ImageNet statistics; identity when disabled."""

    def __init__(self, enabled: bool = True):
        super().__init__()
        self.enabled = enabled
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) → same shape."""
        return (x - self.mean) / self.std if self.enabled else x


class NormalizedEncoder(nn.Module):
    """normalise → backbone: what a pre-training method sees as its encoder, (B, 3, H, W) →
    (B, feature_dim). A method that copies it (BYOL's target) copies the normalisation too.
    :meth:`use_fast` routes the forward through a compiled view of the same backbone."""

    def __init__(self, backbone: nn.Module, norm: Normalize):
        super().__init__()
        self.backbone = backbone
        self.norm = norm
        self.feature_dim = backbone.feature_dim
        self._fast: list = []  # a plain list: the compiled view is not a submodule

    def use_fast(self, forward) -> None:
        """Run the backbone through ``forward`` (e.g. ``torch.compile(backbone)``)."""
        self._fast[:] = [] if forward is self.backbone else [forward]

    def forward(self, x: Tensor) -> Tensor:
        backbone = self._fast[0] if self._fast else self.backbone
        return backbone(self.norm(x))


class Classifier(nn.Module):
    """normalise → backbone → linear head: (B, 3, H, W) → (B, n_classes) logits."""

    def __init__(self, backbone: nn.Module, head: nn.Linear, normalize: bool = True):
        super().__init__()
        self.norm = Normalize(normalize)
        self.backbone = backbone
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(self.norm(x)))


def init_linear(layer: nn.Linear, gen: torch.Generator) -> None:
    """PyTorch's default Linear init (weight and bias ~ U(±1/√fan_in)) drawn from ``gen``."""
    bound = 1 / math.sqrt(layer.in_features)
    with torch.no_grad():
        w = torch.rand(layer.weight.shape, generator=gen) * 2 * bound - bound
        layer.weight.copy_(w)
        if layer.bias is not None:
            layer.bias.copy_(torch.rand(layer.bias.shape, generator=gen) * 2 * bound - bound)


class HeadBank(nn.Module):
    """S independent linear heads as one module: features (B, D) → logits (S, B, C).

    Head s is initialised exactly as :func:`init_linear` initialises an ``nn.Linear`` from
    ``gens[s]``, so training the bank with loss = Σ_s loss_s (and an element-wise optimiser
    such as Adam) gives every head the same trajectory as a separate run.
    """

    def __init__(self, in_features: int, out_features: int, gens: list[torch.Generator]):
        super().__init__()
        weights, biases = [], []
        for g in gens:
            lin = nn.Linear(in_features, out_features)
            init_linear(lin, g)
            weights.append(lin.weight.detach())
            biases.append(lin.bias.detach())
        self.weight = nn.Parameter(torch.stack(weights))  # (S, C, D)
        self.bias = nn.Parameter(torch.stack(biases))  # (S, C)

    @property
    def n_heads(self) -> int:
        return int(self.weight.shape[0])

    def forward(self, features: Tensor) -> Tensor:
        """(B, D) → (S, B, C)."""
        return torch.einsum("bd,scd->sbc", features, self.weight) + self.bias[:, None, :]
