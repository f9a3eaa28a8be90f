"""The training engine shared by pre-training stages and evaluation protocols."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

LossFn = Callable[[Tensor, Tensor | None], Tensor]


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """The forward passes' arithmetic (a stage's or protocol's ``precision``): ``auto`` = bf16
    autocast on CUDA and none elsewhere, ``fp32`` = no autocast, ``bf16`` = bf16 autocast on any
    device, ``fp16`` = fp16 autocast on CUDA (its losses scaled, see :func:`grad_scaler`)."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("precision fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    if precision not in ("auto", "fp32"):
        raise ValueError(f"unknown precision {precision!r}")
    return contextlib.nullcontext()


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 training (fp16 gradients underflow without one); None otherwise."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def step(loss: Tensor, optimizer: torch.optim.Optimizer,
         scaler: torch.amp.GradScaler | None = None) -> None:
    """Backward and one optimiser step (through the loss scaler when there is one)."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


_COMPILE = {"on": False}


def set_compile(on: bool) -> None:
    """Switch ``torch.compile`` of the training forward passes on CUDA (``compile: true`` in a
    suite, or ``BENCH_COMPILE=1``)."""
    _COMPILE["on"] = bool(on)


def maybe_compile(module: nn.Module, device: torch.device) -> Callable[..., Tensor]:
    """``torch.compile(module)`` when switched on and on CUDA, else the module itself. The
    compiled wrapper shares the module's parameters; state dicts are taken from the module."""
    if _COMPILE["on"] and device.type == "cuda":
        return torch.compile(module)
    return module


def prepare(module: nn.Module, device: torch.device) -> nn.Module:
    """Move to the device; channels_last memory format on CUDA."""
    module = module.to(device)
    if device.type == "cuda":
        module = module.to(memory_format=torch.channels_last)
    return module


def run_epoch(
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    batch_iter: Iterable[tuple[Tensor, Tensor | None]],
    where: str = "",
    after_step: Callable[[], None] | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """One pass over ``batch_iter``; returns the mean loss. Raises :class:`NonFiniteLoss`.

    The loss is accumulated on the device and checked once at the end of the epoch (no
    host synchronisation per step).
    """
    total: Tensor | None = None
    n = 0
    for x, y in batch_iter:
        loss = loss_fn(x, y)
        step(loss, optimizer, scaler)
        if scheduler is not None:
            scheduler.step()
        if after_step is not None:
            after_step()
        total = loss.detach().float() if total is None else total + loss.detach().float()
        n += 1
    if total is None:
        raise ValueError(f"no batches to train on{where}")
    mean = float(total) / n
    if not torch.isfinite(torch.tensor(mean)):
        raise NonFiniteLoss(f"training loss became {mean}{where}")
    return mean


def state_digest(module: nn.Module) -> str:
    """sha256 over every tensor of a module's state dict (to prove a frozen module unchanged)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
