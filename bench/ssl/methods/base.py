"""What a pre-training method is: a module that owns its projector/head and computes a loss.

A method file defines one subclass of :class:`Method` with a pydantic ``Params`` model (validated
when the suite loads) and registers it in ``bench.ssl.methods.METHODS`` — or is named in a suite as
``package.module:ClassName``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from bench.ssl.methods.params import MethodParams, ProjectorSpec

__all__ = ["Method", "MethodParams", "ProjectorSpec", "build_projector"]


def build_projector(in_dim: int, spec: ProjectorSpec) -> nn.Sequential:
    """Projector from ``spec``; Kaiming-normal weights, zero biases (the paper's code)."""
    layers: list[nn.Module] = []
    dims = [in_dim, *spec.dims]
    for i in range(len(spec.dims)):
        lin = nn.Linear(dims[i], dims[i + 1], bias=spec.bias)
        nn.init.kaiming_normal_(lin.weight)
        if lin.bias is not None:
            nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < len(spec.dims) - 1:
            if spec.batch_norm:
                layers.append(nn.BatchNorm1d(dims[i + 1]))
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Method(nn.Module):
    """A pre-training method.

    Class attributes:
        Params: its pydantic parameter model.
        views: ``"ssl"`` (two augmented views per image) or ``"train"`` (one view, labels used).
        needs_labels: whether the stage's data must be labelled.
    """

    Params: ClassVar[type[MethodParams]] = MethodParams
    views: ClassVar[Literal["ssl", "train"]] = "ssl"
    needs_labels: ClassVar[bool] = False

    def __init__(self, feature_dim: int, params: MethodParams, n_classes: int | None = None):
        super().__init__()
        self.feature_dim = feature_dim
        self.params = params
        self.n_classes = n_classes

    def loss(self, encoder: nn.Module, views: list[Tensor], labels: Tensor | None) -> Tensor:
        """Scalar loss of a batch. ``encoder``: an ``nn.Module`` (the input normalisation
        included, see :class:`bench.models.heads.NormalizedEncoder`), (B, 3, H, W) →
        (B, feature_dim); ``views``: list of (B, 3, H, W) tensors in [0, 1]."""
        raise NotImplementedError

    def extra_loss(self) -> Tensor:
        """A penalty on the method's own parameters (default none)."""
        return torch.zeros(())

    def bind(self, encoder: nn.Module, total_steps: int) -> None:
        """Called once before training with the online encoder (e.g. to copy a target)."""

    def after_step(self, encoder: nn.Module) -> None:
        """Called after every optimiser step (e.g. an EMA update)."""
