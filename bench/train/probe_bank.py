"""Linear probes of many seeds at once: a :class:`HeadBank` on one shared encoder forward.

When only the head's initialisation differs between a cell's trials (``seeds.vary: [head]``),
the encoder sees the same batches with the same augmentations in every trial, so its features
can be computed once per batch for all S heads. The loss is the sum of the per-head losses, so
each head gets exactly its own gradient; with Adam (element-wise) and one shared schedule every
head follows the trajectory of its separate run. With ``cache_features`` (no augmentation) the
features of the whole set are computed once.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bench.config.protocols import ProtocolBase
from bench.data.loader import ImageSet, balanced_weights, batches, n_batches
from bench.models.heads import HeadBank, Normalize
from bench.models.registry import frozen_modes, set_trainable
from bench.seeds import generator
from bench.train.evaluate import EpochHook, TrialResult, augment_for, tta_probs
from bench.train.loop import autocast, grad_scaler, prepare, run_epoch, state_digest
from bench.train.metrics import compute_metrics
from bench.train.optim import make_optimizer, make_scheduler, param_groups


def bank_eligible(protocol: ProtocolBase, vary: list[str]) -> bool:
    """Whether a cell's trials can share one encoder forward (exactly equal to separate runs)."""
    lr_ok = protocol.lr_search.method == "fixed" or protocol.lr_search.per == "cell"
    return (not protocol.trains_encoder and not protocol.train_bn and lr_ok
            and set(vary) <= {"head"})


@torch.no_grad()
def encode_all(encoder, data: ImageSet, device: torch.device, bs: int) -> Tensor:
    """(N, D) float features of every image of ``data``, in order, ``bs`` at a time."""
    out = [encoder(x).float() for x, _ in batches(data, bs, device, None, drop_last=False)]
    return torch.cat(out)


def run_probe_bank(
    backbone: torch.nn.Module,
    protocol: ProtocolBase,
    train: ImageSet,
    test: ImageSet,
    class_names: list[str],
    seeds_list: list[dict[str, int]],
    device: torch.device,
    max_lr: float,
    on_epoch: EpochHook | None = None,
) -> list[TrialResult]:
    """Train S heads (one per entry of ``seeds_list``) on a frozen encoder; test each.

    The order, augment and TTA seeds of the first entry are used for all (they must agree).
    """
    first = seeds_list[0]
    for s in seeds_list[1:]:
        if any(s[k] != first[k] for k in ("order", "augment", "tta")):
            raise ValueError("a HeadBank needs the same order/augment/tta seeds in every trial")
    norm = Normalize(protocol.normalize).to(device)
    backbone = prepare(backbone, device)
    set_trainable(backbone, None, False)
    frozen = frozen_modes(backbone, None, False)
    frozen()
    before = state_digest(backbone)
    bank = HeadBank(backbone.feature_dim, len(class_names),
                    [generator(s["head"]) for s in seeds_list]).to(device)
    aug = augment_for(protocol)
    scaler = grad_scaler(device, protocol.precision)
    order_gen, aug_gen = generator(first["order"]), generator(first["augment"])
    bs = protocol.batch_size

    def encode(x: Tensor) -> Tensor:
        with torch.no_grad(), autocast(device, protocol.precision):
            return backbone(norm(x)).float()

    if protocol.cache_features:
        feats = encode_all(encode, train, device, max(bs, 256))
        feat_set = ImageSet(feats, train.labels.to(device), train.items)
    weights = balanced_weights(train) if protocol.sampling == "balanced" else None

    def epoch_iter():
        if protocol.cache_features:
            return _feature_batches(feat_set, bs, order_gen, weights, protocol.drop_last)
        return ((encode(aug(x, aug_gen)), y) for x, y in
                batches(train, bs, device, order_gen, drop_last=protocol.drop_last,
                        weights=weights))

    def loss_fn(f: Tensor, y: Tensor | None) -> Tensor:
        logits = bank(f)  # (S, B, C)
        s, b, c = logits.shape
        per_head = F.cross_entropy(logits.reshape(s * b, c), y.repeat(s), reduction="none")
        return per_head.view(s, b).mean(1).sum()

    history: list[float] = []
    if protocol.n_warmup:
        warm = make_optimizer(param_groups([bank], protocol.optimizer.weight_decay),
                              protocol.optimizer, protocol.warmup_lr)
        for epoch in range(protocol.n_warmup):
            loss = run_epoch(loss_fn, warm, None, epoch_iter(), " (warm-up)",
                             scaler=scaler) / bank.n_heads
            history.append(loss)
            if on_epoch:
                on_epoch("warmup", epoch, loss)
    opt = make_optimizer(param_groups([bank], protocol.optimizer.weight_decay),
                         protocol.optimizer, max_lr)
    steps = n_batches(len(train), bs, drop_last=protocol.drop_last)
    sched = make_scheduler(opt, protocol.schedule, max_lr, protocol.epochs * steps)
    for epoch in range(protocol.epochs):
        loss = run_epoch(loss_fn, opt, sched, epoch_iter(), scaler=scaler) / bank.n_heads
        history.append(loss)
        if on_epoch:
            on_epoch("train", epoch, loss)
    if state_digest(backbone) != before:
        raise AssertionError("linear probe changed the frozen encoder")
    probs = _predict(encode, bank, test, protocol, aug, generator(first["tta"]), device)
    labels = test.labels.numpy()
    heads = torch.cat([bank.weight, bank.bias[:, :, None]], 2).detach().cpu().numpy()
    return [TrialResult(metrics=compute_metrics(p, labels, class_names), probs=p, labels=labels,
                        max_lr=max_lr, history=list(history), head=h)
            for p, h in zip(probs, heads, strict=True)]


def _feature_batches(data: ImageSet, bs: int, gen: torch.Generator, weights: Tensor | None,
                     drop_last: bool = True):
    n = len(data)
    if weights is not None:
        order = torch.multinomial(weights, n, replacement=True, generator=gen)
    else:
        order = torch.randperm(n, generator=gen)
    if data.items is not None:
        order = data.items[order]
    stop = n - (n % bs) if n >= bs and drop_last else n
    for start in range(0, stop, bs):
        idx = order[start:start + bs].to(data.images.device)
        yield data.images[idx], data.labels[idx]


def _predict(encode, bank: HeadBank, data: ImageSet, protocol: ProtocolBase, aug,
             tta_gen: torch.Generator, device: torch.device) -> list[np.ndarray]:
    """(S,) list of (N, C) probabilities, TTA as in :func:`bench.train.trial.predict`."""
    bank.eval()
    probs = tta_probs(lambda x: bank(encode(x)), data, protocol, aug, tta_gen, device)
    return list(probs.numpy().astype(np.float32))
