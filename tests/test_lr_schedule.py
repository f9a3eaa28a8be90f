"""LR finder (fastai semantics) and 1cycle (fastai parameters) against independent references."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from bench.config.schema import OptimizerSpec, ScheduleSpec
from bench.train.lr_finder import lr_find
from bench.train.optim import make_optimizer, make_scheduler


def _toy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g)
    y = x @ torch.randn(5, 1, generator=g) + 0.1 * torch.randn(64, 1, generator=g)
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    return model, x, y


def _batches(x, y):
    def make():
        for i in range(0, 64, 8):
            yield x[i:i + 8], y[i:i + 8]
    return make


def _reference(model, x, y, start, end, num_it):
    """fastai's lr_find, written out: exponential schedule, debiased EMA (β 0.98), stop at
    4× the best smoothed loss, then 'valley' over points [num_it//10 : -5]."""
    model = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=start, betas=(0.9, 0.99), eps=1e-5,
                            weight_decay=0.0)
    lrs, losses = [], []
    mov, best = 0.0, float("inf")
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 64, 8)]
    for it in range(num_it):
        lr = start * (end / start) ** (it / num_it)
        for grp in opt.param_groups:
            grp["lr"] = lr
        xb, yb = batches[it % len(batches)]
        loss = nn.functional.mse_loss(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mov = mov * 0.98 + float(loss.detach()) * 0.02
        smooth = mov / (1 - 0.98 ** (it + 1))
        lrs.append(lr)
        losses.append(smooth)
        best = min(best, smooth)
        if smooth > 4 * best:
            break
    sl, sy = lrs[num_it // 10:-5], losses[num_it // 10:-5]
    # valley: longest strictly decreasing subsequence ending at each point (dynamic programming)
    n = len(sy)
    length = [1] * n
    for i in range(n):
        length[i] = 1 + max([length[j] for j in range(i) if sy[j] > sy[i]], default=0)
    end_i = max(range(n), key=lambda i: (length[i], -i))
    start_i = end_i - length[end_i]
    sec = (end_i - start_i) / 3
    idx = start_i + int(sec) + int(sec / 2)
    return lrs, losses, sl[idx]


def _fresh_opt(model: nn.Module) -> torch.optim.Optimizer:
    return make_optimizer([{"params": list(model.parameters()), "weight_decay": 0.0}],
                          OptimizerSpec(), 1e-3)


def test_lr_finder_matches_fastai_reference() -> None:
    model, x, y = _toy()
    lrs, losses, valley = _reference(model, x, y, 1e-7, 10.0, 100)
    res = lr_find([model], _fresh_opt(model), lambda a, b: nn.functional.mse_loss(model(a), b),
                  _batches(x, y), 1e-7, 10.0, 100, "valley")
    assert res.lrs == pytest.approx(lrs, rel=1e-12)
    assert res.losses == pytest.approx(losses, rel=1e-5)
    assert res.suggestion == pytest.approx(valley, rel=1e-12)


def test_lr_finder_stops_at_four_times_the_best_loss() -> None:
    model, x, y = _toy()
    calls = []

    def exploding(a, b):
        calls.append(1)
        return nn.functional.mse_loss(model(a), b) * (1.0 if len(calls) < 30 else 1e3)

    res = lr_find([model], _fresh_opt(model), exploding, _batches(x, y), 1e-7, 10.0, 100)
    assert len(calls) < 40 and len(res.lrs) == len(calls)


def test_lr_finder_restores_model_and_optimiser() -> None:
    model, x, y = _toy()
    opt = _fresh_opt(model)
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()  # give the optimiser state to restore
    before_model = copy.deepcopy(model.state_dict())
    before_opt = copy.deepcopy(opt.state_dict())
    lr_find([model], opt, lambda a, b: nn.functional.mse_loss(model(a), b), _batches(x, y),
            1e-7, 10.0, 100, "valley")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before_model[k])
    after = opt.state_dict()
    assert after["param_groups"] == before_opt["param_groups"]
    for pid, st in before_opt["state"].items():
        for name, t in st.items():
            assert torch.equal(torch.as_tensor(t), torch.as_tensor(after["state"][pid][name]))


def test_one_cycle_follows_fastai() -> None:
    p = nn.Parameter(torch.zeros(1))
    opt = make_optimizer([{"params": [p], "weight_decay": 0.0}], OptimizerSpec(), 1.0)
    total, max_lr = 400, 0.01
    sched = make_scheduler(opt, ScheduleSpec(), max_lr, total)
    lrs, betas = [], []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        betas.append(opt.param_groups[0]["betas"][0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(max_lr / 25)
    peak = max(range(total), key=lrs.__getitem__)
    assert abs(peak - 0.25 * total) <= 1
    assert lrs[peak] == pytest.approx(max_lr)
    assert lrs[-1] == pytest.approx(max_lr / 1e5, rel=0.05)
    assert betas[0] == pytest.approx(0.95) and betas[peak] == pytest.approx(0.85)
    assert betas[-1] == pytest.approx(0.95, abs=1e-4)
    # cosine warm-up: halfway to the peak the lr is halfway between start and max
    mid = peak // 2
    expected = max_lr / 25 + (max_lr - max_lr / 25) * (1 - math.cos(math.pi * mid / peak)) / 2
    assert lrs[mid] == pytest.approx(expected, rel=0.02)
