"""Optimiser and schedule helpers: parameter groups, Adam(W), fastai-style 1cycle."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from bench.config.schema import OptimizerSpec, ScheduleSpec


def param_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict]:
    """Trainable parameters in two groups: with weight decay, and without (biases and every
    1-d parameter such as BatchNorm/LayerNorm affine weights), as DINO's ``get_params_groups``."""
    decay, no_decay = [], []
    seen: set[int] = set()
    for module in modules:
        for name, p in module.named_parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(groups: list[dict], spec: OptimizerSpec, lr: float) -> torch.optim.AdamW:
    """Adam with decoupled weight decay (AdamW), betas/eps from ``spec``; the fused CUDA kernel
    when every parameter is on a GPU (one launch per step instead of one per tensor group)."""
    if not groups:
        raise ValueError("nothing to optimise: every parameter is frozen")
    fused = all(p.is_cuda for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(spec.betas), eps=spec.eps,
                             fused=fused or None)


def make_scheduler(
    opt: torch.optim.Optimizer, spec: ScheduleSpec, max_lr: float, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-iteration schedule. ``one_cycle`` reproduces fastai's ``fit_one_cycle``: start at
    max/25, cosine up to max at ``pct_start``, cosine down to max/(25·4000) = max/1e5, with Adam's
    β1 cycling 0.95 → 0.85 → 0.95.

    Very short runs (fewer than 4 steps) use a constant lr, and the warm-up fraction is raised
    to cover at least two steps, since a 1cycle needs a step on each side of its peak.
    """
    if spec.kind == "constant" or total_steps < 4:
        for g in opt.param_groups:
            g["lr"] = max_lr
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=max_lr,
        total_steps=total_steps,
        pct_start=max(spec.pct_start, 2 / total_steps),
        anneal_strategy=spec.anneal,
        cycle_momentum=True,
        base_momentum=0.85,
        max_momentum=0.95,
        div_factor=spec.div_factor,
        final_div_factor=spec.final_div_factor,
    )
