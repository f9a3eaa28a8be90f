"""Encoder registry: architecture name → backbone without ``fc`` (global pooling kept).

Every backbone maps (B, 3, H, W) float in [0, 1] (or normalised) to (B, ``feature_dim``) features and
has torchvision's ResNet attribute layout, so named parameter groups (``last_block`` = ``layer4[-1]``,
the paper's "final 3 layers") mean the same on every architecture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from bench.models.archs import ARCHS, UNFREEZE_GROUPS

__all__ = ["ARCHS", "UNFREEZE_GROUPS"]


def build_backbone(arch: str) -> nn.Module:
    """A randomly initialised backbone (uses the global torch RNG; see :func:`seeded_backbone`)."""
    if arch not in ARCHS:
        raise KeyError(f"unknown architecture {arch!r}; known: {sorted(ARCHS)}")
    if arch.startswith("tiny_resnet"):
        from bench.models.tiny import TinyResNet

        return TinyResNet(width=8 if arch.endswith("_w8") else 16)
    if arch.endswith("_2x"):
        from bench.models.wide import build_wide

        return build_wide(arch)
    import torchvision.models as tvm

    model = getattr(tvm, arch)(weights=None)
    model.feature_dim = model.fc.in_features
    model.fc = nn.Identity()
    return model


def seeded_backbone(arch: str, seed: int) -> nn.Module:
    """A backbone whose random initialisation depends only on ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_backbone(arch)


def feature_dim(backbone: nn.Module) -> int:
    """Size of the backbone's output features."""
    return int(backbone.feature_dim)


def group_parameters(backbone: nn.Module, group: str) -> Iterator[tuple[str, nn.Parameter]]:
    """Named parameters of a group: ``all``, ``layer4`` or ``last_block`` (``layer4[-1]``)."""
    if group == "all":
        yield from backbone.named_parameters()
    elif group == "layer4":
        yield from (("layer4." + n, p) for n, p in backbone.layer4.named_parameters())
    elif group == "last_block":
        last = len(backbone.layer4) - 1
        yield from ((f"layer4.{last}." + n, p) for n, p in backbone.layer4[-1].named_parameters())
    else:
        raise KeyError(f"unknown parameter group {group!r}; known: {UNFREEZE_GROUPS}")


def set_trainable(backbone: nn.Module, group: str | None, train_bn: bool = False) -> None:
    """Freeze the whole backbone, then unfreeze ``group`` (None: nothing).

    With ``train_bn`` every BatchNorm affine parameter stays trainable, as fastai's
    ``train_bn=True`` does.
    """
    for p in backbone.parameters():
        p.requires_grad_(False)
    if group is not None:
        for _, p in group_parameters(backbone, group):
            p.requires_grad_(True)
    if train_bn:
        for m in backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                for p in m.parameters():
                    p.requires_grad_(True)


def frozen_modes(backbone: nn.Module, group: str | None, train_bn: bool) -> Callable[[], None]:
    """Return a function that puts the backbone in the right train/eval modes.

    Frozen parts run in eval mode (BatchNorm statistics frozen), the trainable group in train
    mode; with ``train_bn`` every BatchNorm layer is in train mode.
    """

    def apply() -> None:
        backbone.eval()
        if group == "all":
            backbone.train()
        elif group == "layer4":
            backbone.layer4.train()
        elif group == "last_block":
            backbone.layer4[-1].train()
        if train_bn:
            for m in backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.train()

    return apply
