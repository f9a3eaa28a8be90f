"""``bench calibrate``: this machine's throughputs for a suite's units, measured in about a minute.

For each unit kind of the plan (``stage``, ``search``, ``trials:<protocol kind>``) the first unit
of that kind is taken as its example: its encoder architecture (random weights), image size,
batch size and precision. On synthetic images of that size, the measurement times forward passes
(eval, no gradient) and training steps (forward + backward + an SGD step) in that precision (the
paper suites' fp32 costs about twice bf16 on a GPU), after warm-up steps, for an equal share of
the time budget. Nothing of the suite's data or weights is read: a GPU node can be calibrated,
and the suite's GPU-hours estimated (with the datasets' declared ``images``), before the data
are in place. The kind's seconds per forward-pass
equivalent (``b`` of :mod:`bench.plan.rates`) is then the training step's seconds per image
divided by :data:`bench.plan.cost.TRAIN` for kinds that mostly train the encoder (stages,
fine-tuning, lr searches of a fine-tune) and the forward pass's seconds per image for the others;
per-unit and per-trial overheads are not measured (``a = c = 0``): finished runs of the store
calibrate those, and replace these rates as soon as there are some.

The encoder is prepared as ``bench run`` prepares it (channels_last and cuDNN's kernel search on
CUDA) and, with ``compiled``, wrapped in ``torch.compile`` as ``compile: true`` wraps the
training forward passes (CUDA only, as in a run); such rates are kept under the device class with
a ``+compile`` suffix, beside the uncompiled ones. Kinds whose encoder, image size, batch size and
precision are the same (a fine-tune's trials and its lr search) are measured once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from bench.errors import BenchError
from bench.models.registry import seeded_backbone
from bench.plan import Plan
from bench.plan.cost import TRAIN
from bench.plan.rates import Rates, trial_kind
from bench.train.loop import autocast, prepare


@dataclass(frozen=True)
class Example:
    kind: str
    arch: str
    image_size: int
    batch_size: int
    trains_encoder: bool
    precision: str

    @property
    def shape(self) -> tuple[str, int, int, str]:
        """What a measurement depends on: (arch, image size, batch size, precision)."""
        return (self.arch, self.image_size, self.batch_size, self.precision)


def examples(plan: Plan) -> list[Example]:
    """One example per unit kind of the plan (its first unit)."""
    out: dict[str, Example] = {}
    inits = plan.suite.inits
    for s in plan.stages:
        out.setdefault("stage", Example("stage", inits[s.init].arch, s.spec.image_size,
                                        s.spec.batch_size, True, s.spec.precision))
    for c in plan.cells:
        spec = c.spec
        ex = Example(trial_kind(c), inits[c.init].arch, spec.image_size,
                     spec.batch_size, spec.trains_encoder, spec.precision)
        out.setdefault(ex.kind, ex)
        if spec.lr_search.method != "fixed":
            out.setdefault("search", Example("search", ex.arch, ex.image_size,
                                             ex.batch_size, ex.trains_encoder, ex.precision))
    return list(out.values())


def device_class(device: torch.device, compiled: bool = False) -> str:
    """A name for this machine's kind of device: the GPU's name, or ``cpu-<threads>t``, with
    ``+compile`` when measured through ``torch.compile``."""
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"cpu-{torch.get_num_threads()}t")
    return name + ("+compile" if compiled else "")


def check_compiled(device: torch.device, compiled: bool) -> None:
    """``torch.compile`` is measured where ``bench run`` uses it, on CUDA only."""
    if compiled and device.type != "cuda":
        raise BenchError(f"bench calibrate --compile measures torch.compile, which bench run "
                         f"uses on CUDA only, and the device here is {device.type}: calibrate "
                         f"on a GPU node (--device cuda), or drop --compile")


def wants_compile(flag: bool | None, suite_compile: bool, env: Mapping[str, str],
                  device: torch.device) -> bool:
    """Whether to measure through ``torch.compile``: ``--compile`` / ``--no-compile`` when given
    (``--compile`` off CUDA is refused), else as ``bench run`` would compile there — the suite's
    ``compile: true`` or ``BENCH_COMPILE=1``, on CUDA."""
    if flag is not None:
        check_compiled(device, flag)
        return flag
    return (suite_compile or env.get("BENCH_COMPILE") == "1") and device.type == "cuda"


def _timed(fn, budget: float, device: torch.device) -> float:
    """Seconds per call of ``fn`` over about ``budget`` seconds, after 2 warm-up calls."""
    for _ in range(2):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - t0
        if elapsed >= budget or n >= 10_000:
            return elapsed / n


def measure(ex: Example, device: torch.device, budget: float,
            compiled: bool = False) -> tuple[float, float]:
    """(forward seconds per image, training-step seconds per image) of one example, in its
    precision, through ``torch.compile`` when ``compiled`` (its compilation is part of the
    warm-up, not of the time)."""
    check_compiled(device, compiled)
    precision = ex.precision
    model = prepare(seeded_backbone(ex.arch, 0), device)
    run = torch.compile(model) if compiled else model
    x = torch.rand(ex.batch_size, 3, ex.image_size, ex.image_size, device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    head = nn.Linear(getattr(model, "feature_dim", 2048), 2).to(device)

    def forward() -> None:
        model.eval()
        with torch.no_grad(), autocast(device, precision):
            run(x)

    def step() -> None:
        model.train()
        with autocast(device, precision):
            loss = head(run(x)).float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    f = _timed(forward, budget / 2, device)
    g = _timed(step, budget / 2, device)
    return f / ex.batch_size, g / ex.batch_size


def calibrate(plan: Plan, device: torch.device, seconds: float = 60.0,
              compiled: bool = False) -> Rates:
    """Rates (``b`` per kind) of the plan's unit kinds on ``device`` within ``seconds``, shared
    equally by the distinct shapes to measure."""
    check_compiled(device, compiled)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as bench run: fixed sizes, the fastest kernels
    exs = examples(plan)
    rates = Rates(source=f"bench calibrate on {device_class(device, compiled)}")
    shapes: dict[tuple[str, int, int, str], Example] = {}
    for ex in exs:
        shapes.setdefault(ex.shape, ex)
    share = seconds / max(len(shapes), 1)
    measured = {shape: measure(ex, device, share, compiled) for shape, ex in shapes.items()}
    for ex in exs:
        fwd, train = measured[ex.shape]
        b = train / TRAIN if ex.trains_encoder else fwd
        rates.per_kind[ex.kind] = (0.0, b, 0.0)
    return rates
