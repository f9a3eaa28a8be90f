"""One evaluation trial: fine-tune or linear-probe an encoder, then test it.

Fine-tune (the paper's protocol): ``warmup_epochs`` head-only epochs with the encoder frozen at a
constant lr (Adam); unfreeze, reset the optimiser, choose the max lr (fixed or LR finder), 1cycle for
``epochs``; the last epoch's model is evaluated (TTA: k passes of the train augmentation, softmax
averaged; or a clean pass). Linear probe: the encoder stays frozen in eval mode (BatchNorm statistics
frozen, unless ``train_bn``) and is checked unchanged afterwards.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.config.protocols import ProtocolBase
from bench.data.loader import ImageSet, balanced_weights, batches, n_batches
from bench.models.heads import Classifier, init_linear
from bench.models.registry import frozen_modes, set_trainable
from bench.seeds import generator
from bench.train.evaluate import AfterEpoch, EpochHook, TrialResult, augment_for, predict
from bench.train.loop import (
    autocast,
    grad_scaler,
    maybe_compile,
    prepare,
    run_epoch,
    state_digest,
)
from bench.train.lr_choice import resolve_lr
from bench.train.lr_finder import lr_find
from bench.train.metrics import compute_metrics
from bench.train.optim import make_optimizer, make_scheduler, param_groups


def run_trial(
    backbone: nn.Module,
    protocol: ProtocolBase,
    train: ImageSet,
    test: ImageSet,
    class_names: list[str],
    seeds: dict[str, int],
    device: torch.device,
    on_epoch: EpochHook | None = None,
    max_lr: float | None = None,
    after_epoch: AfterEpoch | None = None,
    search_only: bool = False,
) -> TrialResult:
    """Train a head (and, for fine-tune, the encoder) from ``backbone``; return test results.

    ``train``/``test`` hold uint8 images already at ``protocol.image_size``. ``max_lr`` (e.g. a
    cell-level search result) replaces the protocol's search; ``after_epoch(epoch, predict)``
    runs after every 1cycle epoch with a function that predicts any image set (clean pass);
    ``search_only`` stops once the max lr is known (no test data is read). Cached features
    are the linear probe's own path (:mod:`bench.protocols.linear_probe`).
    """
    if protocol.cache_features and not search_only and after_epoch is None:
        raise ValueError("cache_features trains through the linear probe's HeadBank "
                         "(bench.protocols.linear_probe), not a plain trial")
    if (not protocol.drop_last and len(train) % protocol.batch_size == 1
            and (protocol.trains_encoder or protocol.train_bn)):
        raise ValueError(f"drop_last: false leaves a last batch of 1 image of {len(train)} "
                         f"(batch_size {protocol.batch_size}): BatchNorm cannot train on it; "
                         "change batch_size or set drop_last: true")
    n_classes = len(class_names)
    head = nn.Linear(backbone.feature_dim, n_classes)
    init_linear(head, generator(seeds["head"]))
    model = prepare(Classifier(backbone, head, normalize=protocol.normalize), device)
    forward = maybe_compile(model, device)
    aug = augment_for(protocol)
    scaler = grad_scaler(device, protocol.precision)
    order_gen, aug_gen = generator(seeds["order"]), generator(seeds["augment"])
    bs = protocol.batch_size
    probe = not protocol.trains_encoder
    history: list[float] = []

    def loss_fn(x: Tensor, y: Tensor | None) -> Tensor:
        with autocast(device, protocol.precision):
            logits = forward(aug(x, aug_gen))
        return F.cross_entropy(logits.float(), y)

    weights = balanced_weights(train) if protocol.sampling == "balanced" else None

    def epoch_iter():
        return batches(train, bs, device, order_gen, drop_last=protocol.drop_last,
                       weights=weights)

    def hook(phase: str, epoch: int, loss: float) -> None:
        history.append(loss)
        if on_epoch is not None:
            on_epoch(phase, epoch, loss)

    before = state_digest(backbone) if probe and not protocol.train_bn else None
    # Phase 1: head only, encoder frozen, constant lr.
    set_trainable(backbone, None, protocol.train_bn)
    frozen = frozen_modes(backbone, None, protocol.train_bn)
    if protocol.n_warmup:
        warm_opt = make_optimizer(param_groups([model], protocol.optimizer.weight_decay),
                                  protocol.optimizer, protocol.warmup_lr)
        for epoch in range(protocol.n_warmup):
            frozen()
            head.train()
            hook("warmup", epoch, run_epoch(loss_fn, warm_opt, None, epoch_iter(), " (warm-up)",
                                            scaler=scaler))
    # Phase 2: unfreeze (fine-tune) and run 1cycle at the searched or fixed lr.
    group = None if probe else "all"
    set_trainable(backbone, group, protocol.train_bn)
    modes = frozen_modes(backbone, group, protocol.train_bn)

    def set_modes() -> None:
        modes()
        head.train()

    set_modes()
    opt = make_optimizer(param_groups([model], protocol.optimizer.weight_decay),
                         protocol.optimizer, protocol.lr_search.lr)
    if max_lr is None:
        max_lr, curve = _search_lr(protocol, [model], opt, loss_fn, epoch_iter, scaler)
    else:
        curve = None
    if search_only:
        return TrialResult(metrics={}, probs=np.zeros((0, n_classes), np.float32),
                           labels=np.zeros(0, np.int64), max_lr=max_lr, history=history,
                           lr_curve=curve)
    steps = n_batches(len(train), bs, drop_last=protocol.drop_last)
    sched = make_scheduler(opt, protocol.schedule, max_lr, protocol.epochs * steps)
    clean = protocol.model_copy(update={"tta": protocol.tta.model_copy(update={"mode": "clean"})})
    for epoch in range(protocol.epochs):
        set_modes()
        hook("train", epoch, run_epoch(loss_fn, opt, sched, epoch_iter(), scaler=scaler))
        if after_epoch is not None:
            after_epoch(epoch, lambda data: predict(model, data, clean, aug, generator(0), device))
            set_modes()
    if before is not None and state_digest(backbone) != before:
        raise AssertionError("linear probe changed the frozen encoder")
    probs = predict(model, test, protocol, aug, generator(seeds["tta"]), device)
    labels = test.labels.numpy()
    head_wb = torch.cat([head.weight, head.bias[:, None]], 1).detach().cpu().numpy()
    return TrialResult(
        metrics=compute_metrics(probs, labels, class_names), probs=probs, labels=labels,
        max_lr=max_lr, history=history, lr_curve=curve, head=head_wb,
    )


def _search_lr(protocol, modules, opt, loss_fn, epoch_iter, scaler=None):
    """The trial's lr when none was given (:func:`~bench.train.lr_choice.resolve_lr`): the fixed
    one, or the LR finder's suggestion on this trial's batches."""
    s = protocol.lr_search
    lr = resolve_lr(s, None)
    if lr == "optuna":
        raise ValueError("an optuna search runs before the trial; pass its max_lr")
    if lr != "lr_finder":
        return lr, None
    res = lr_find(modules, opt, loss_fn, epoch_iter, s.start_lr, s.end_lr, s.num_it, s.suggestion,
                  scaler)
    return res.suggestion, (res.lrs, res.losses)
