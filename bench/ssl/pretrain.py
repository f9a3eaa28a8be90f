"""The stage runner: (further) pre-train an encoder with a method, resumable per epoch.

Schedule (the paper's further pre-training): ``warmup_epochs`` with the encoder frozen (only the
method's projector/head trains, constant lr, Adam); then the unfreeze policy (``all``,
``layer4`` or ``last_block`` = ``layer4[-1]``; ``train_bn`` keeps every BatchNorm trainable as
fastai does), the max lr (fixed or LR finder), and 1cycle for ``epochs``. After every epoch a
checkpoint (encoder, method, optimiser, scheduler, generator states) is written atomically, so a
killed stage resumes at its last finished epoch and ends with the same weights.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from bench.config.schema import StageSpec
from bench.data.augment import TrainAugment
from bench.data.loader import ImageSet, batches, n_batches
from bench.models.heads import Normalize, NormalizedEncoder
from bench.models.registry import frozen_modes, set_trainable
from bench.seeds import derive_seed, generator
from bench.ssl.augment import SSLViews, ViewSpec
from bench.ssl.methods.base import Method
from bench.train.loop import autocast, grad_scaler, maybe_compile, prepare, run_epoch
from bench.train.lr_finder import lr_find
from bench.train.optim import make_optimizer, make_scheduler, param_groups

EpochHook = Callable[[str, int, float], None]


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def build_views(spec: StageSpec, kind: str) -> Callable:
    """The stage's augmentation: two SSL views, or one train view (supervised)."""
    if kind == "ssl":
        v = spec.views
        return SSLViews(
            size=spec.image_size, view1=ViewSpec(**v.view1.model_dump()),
            view2=ViewSpec(**v.view2.model_dump()), crop_scale=tuple(v.crop_scale),
            crop_ratio=tuple(v.crop_ratio), crop_per_image=v.crop_per_image)
    one = TrainAugment.of(spec.augment, spec.image_size)
    return lambda x, g: (one(x, g),)


def run_stage(
    backbone: nn.Module,
    spec: StageSpec,
    method_cls: type[Method],
    data: ImageSet,
    n_classes: int | None,
    device: torch.device,
    checkpoint: Path | None = None,
    on_epoch: EpochHook | None = None,
) -> tuple[nn.Module, dict[str, float]]:
    """Pre-train ``backbone`` in place; return it (on the CPU) and summary figures.

    ``data`` holds uint8 images at the stage's ``image_size`` (repeats already applied).
    """
    params = method_cls.Params.model_validate(spec.params)
    with torch.random.fork_rng(devices=[]):  # the projector/head init depends on the seed only
        torch.manual_seed(derive_seed(spec.seed, "method"))
        method = method_cls(backbone.feature_dim, params, n_classes)
    encoder = NormalizedEncoder(backbone, Normalize(spec.normalize))
    steps_per_epoch = n_batches(len(data), spec.batch_size, True)
    method.bind(encoder, steps_per_epoch * (spec.warmup_epochs + spec.epochs))
    encoder, method = prepare(encoder, device), prepare(method, device)
    backbone = encoder.backbone
    views_fn = build_views(spec, method_cls.views)
    order_gen = generator(derive_seed(spec.seed, "order"))
    scaler = grad_scaler(device, spec.precision)
    aug_gen = generator(derive_seed(spec.seed, "augment"))
    encoder.use_fast(maybe_compile(backbone, device))

    def loss_fn(x: Tensor, y: Tensor | None) -> Tensor:
        views = list(views_fn(x, aug_gen))
        with autocast(device, spec.precision):
            return method.loss(encoder, views, y)

    def epoch_iter():
        return batches(data, spec.batch_size, device, order_gen, drop_last=True)

    total = spec.warmup_epochs + spec.epochs
    state = torch.load(checkpoint, weights_only=True) if checkpoint and checkpoint.exists() else None
    start = 0
    max_lr = spec.lr_search.lr
    if state is not None:
        backbone.load_state_dict(state["backbone"])
        method.load_state_dict(state["method"])
        order_gen.set_state(state["order_gen"])
        aug_gen.set_state(state["aug_gen"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        start = int(state["epoch"]) + 1
        max_lr = float(state["max_lr"])

    summary: dict[str, float] = {}
    opt = sched = None
    for epoch in range(start, total):
        warm = epoch < spec.warmup_epochs
        group = None if warm else spec.unfreeze
        set_trainable(backbone, group, spec.train_bn)
        set_modes = frozen_modes(backbone, group, spec.train_bn)

        def modes(set_modes=set_modes) -> None:
            set_modes()
            method.train()

        modes()
        if warm and opt is None:
            opt = make_optimizer(param_groups([backbone, method], spec.optimizer.weight_decay),
                                 spec.optimizer, spec.warmup_lr)
            if state is not None and state["phase"] == "warmup":
                opt.load_state_dict(state["opt"])
        if not warm and sched is None:
            if opt is None or spec.reset_optimizer:
                opt = make_optimizer(param_groups([backbone, method],
                                                  spec.optimizer.weight_decay),
                                     spec.optimizer, spec.lr_search.lr)
            resuming = state is not None and state["phase"] == "main"
            if not resuming and spec.lr_search.method == "lr_finder":
                s = spec.lr_search
                res = lr_find([backbone, method], opt, loss_fn, epoch_iter, s.start_lr, s.end_lr,
                              s.num_it, s.suggestion, scaler)
                max_lr = res.suggestion
            sched = make_scheduler(opt, spec.schedule, max_lr,
                                   spec.epochs * n_batches(len(data), spec.batch_size, True))
            if resuming:  # after the scheduler's constructor, which rewrites lr and betas
                opt.load_state_dict(state["opt"])
                sched.load_state_dict(state["sched"])
        assert opt is not None
        loss = run_epoch(loss_fn, opt, None if warm else sched, epoch_iter(),
                         f" (stage epoch {epoch})", lambda: method.after_step(encoder), scaler)
        summary["final_loss"] = loss
        if checkpoint is not None:
            _save(checkpoint, {
                "epoch": epoch, "phase": "warmup" if warm else "main", "max_lr": max_lr,
                "backbone": backbone.state_dict(), "method": method.state_dict(),
                "opt": opt.state_dict(), "sched": sched.state_dict() if sched else {},
                "order_gen": order_gen.get_state(), "aug_gen": aug_gen.get_state(),
                **({"scaler": scaler.state_dict()} if scaler is not None else {}),
            })
        if on_epoch is not None:  # after the checkpoint: a hook may stop the stage here
            on_epoch("warmup" if warm else "train", epoch, loss)
    summary["max_lr"] = max_lr
    return backbone.cpu(), summary
