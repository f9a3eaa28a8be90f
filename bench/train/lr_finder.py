"""The LR finder with fastai's semantics (``Learner.lr_find``), model and optimiser restored.

lr grows exponentially from ``start_lr`` to ``end_lr``: at iteration i, lr = start·(end/start)^(i/num_it);
the recorded loss is smoothed (β = 0.98, debiased); the search stops after ``num_it`` iterations or
when the smoothed loss exceeds 4× its minimum. Suggestions are computed on points
[num_it//10 : −5] of the curve:
- ``valley``: fastai's longest-valley rule — the longest decreasing subsequence of the losses, and
  the point start + ⌊len/3⌋ + ⌊len/6⌋ of it;
- ``minimum``: lr at the minimum loss, divided by 10;
- ``steep``: lr where the loss falls fastest against log lr.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bench.train.loop import step


@dataclass
class LRFinderResult:
    """Recorded curve and the suggested lr."""

    lrs: list[float]
    losses: list[float]
    suggestion: float
    index: int


def smooth_losses(raw: list[float], beta: float = 0.98) -> list[float]:
    """fastai's debiased exponential moving average."""
    out, avg = [], 0.0
    for i, loss in enumerate(raw, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return out


def valley_index(losses: list[float]) -> int:
    """fastai's ``valley``: index into ``losses`` of the suggested point."""
    n = len(losses)
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def suggest(lrs: list[float], losses: list[float], num_it: int, how: str) -> tuple[float, int]:
    """(suggested lr, index into the full curve) for ``valley``, ``minimum`` or ``steep``."""
    lo = num_it // 10
    hi = len(lrs) - 5
    if hi - lo < 3:
        lo, hi = 0, len(lrs)
    sub_l, sub_y = lrs[lo:hi], losses[lo:hi]
    if how == "valley":
        i = valley_index(sub_y)
        return sub_l[i], lo + i
    if how == "minimum":
        i = min(range(len(sub_y)), key=sub_y.__getitem__)
        return sub_l[i] / 10, lo + i
    if how == "steep":
        grads = [
            (sub_y[k + 1] - sub_y[k]) / (math.log(sub_l[k + 1]) - math.log(sub_l[k]))
            for k in range(len(sub_y) - 1)
        ]
        i = min(range(len(grads)), key=grads.__getitem__)
        return sub_l[i], lo + i
    raise ValueError(f"unknown suggestion {how!r}")


def lr_find(
    modules: list[nn.Module],
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor | None], Tensor],
    batches: Callable[[], Iterator[tuple[Tensor, Tensor | None]]],
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_it: int = 100,
    how: str = "valley",
    scaler: torch.amp.GradScaler | None = None,
) -> LRFinderResult:
    """Run the finder and restore every module's state and the optimiser's state afterwards.

    Args:
        modules: modules whose state is saved and restored (model, heads, projector).
        optimizer: the optimiser that will train afterwards (its state is restored too).
        loss_fn: (images, labels) → scalar loss, with the modules in their training modes.
        batches: factory of a batch iterator (re-created when an epoch runs out).
        start_lr, end_lr, num_it: the exponential sweep.
        how: ``valley`` | ``minimum`` | ``steep``.
    """
    saved_modules = [copy.deepcopy(m.state_dict()) for m in modules]
    saved_opt = copy.deepcopy(optimizer.state_dict())
    saved_scaler = copy.deepcopy(scaler.state_dict()) if scaler is not None else None
    lrs: list[float] = []
    raw: list[float] = []
    smooth: list[float] = []
    best = math.inf
    avg = 0.0
    it = batches()
    try:
        for i in range(num_it):
            lr = start_lr * (end_lr / start_lr) ** (i / num_it)
            for g in optimizer.param_groups:
                g["lr"] = lr
            try:
                x, y = next(it)
            except StopIteration:
                it = batches()
                x, y = next(it)
            loss = loss_fn(x, y)
            step(loss, optimizer, scaler)
            value = float(loss.detach())
            lrs.append(lr)
            raw.append(value)
            avg = 0.98 * avg + 0.02 * value
            s = avg / (1 - 0.98 ** (i + 1))
            smooth.append(s)
            if not math.isfinite(s):
                break
            best = min(best, s)
            if s > 4 * best:
                break
    finally:
        for m, state in zip(modules, saved_modules, strict=True):
            m.load_state_dict(state)
        optimizer.load_state_dict(saved_opt)
        if scaler is not None and saved_scaler is not None:
            scaler.load_state_dict(saved_scaler)
    finite = [(a, b) for a, b in zip(lrs, smooth, strict=True) if math.isfinite(b)]
    if len(finite) < 2:
        raise RuntimeError("the LR finder recorded fewer than 2 finite losses")
    f_lrs, f_losses = [a for a, _ in finite], [b for _, b in finite]
    lr, idx = suggest(f_lrs, f_losses, num_it, how)
    return LRFinderResult(lrs=f_lrs, losses=f_losses, suggestion=lr, index=idx)
