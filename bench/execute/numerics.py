"""What decides a run's arithmetic besides its key: device, CPU threads, determinism flags.

A stage or trial trained with 1 CPU thread gives other numbers than with 2 (the sums of a
convolution's gradient are split differently), ``precision: auto`` is bf16 on CUDA and fp32 on
the CPU, and cuDNN's autotuner or deterministic mode pick other kernels. None of these is in a
content key (the key describes what is computed, not where), so every run is tagged with its
*numerics* (:data:`bench.track.Tag.NUMERICS`) and a run refuses, before anything trains, to add
results to a suite whose finished units were computed with other numerics: results stay a
function of the key within one store.

The CPU thread count of a process is ``BENCH_THREADS`` if set, else its share of the cores under
``--workers N`` (so N workers never oversubscribe the machine), else the suite's ``threads``,
else torch's default (the machine's cores).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable

import torch

from bench.errors import BenchError
from bench.track import FINISHED, RunRecord, Tag


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_threads(suite_threads: int | None, workers: int = 1) -> int | None:
    """The CPU threads one process of ``bench run --workers <workers>`` uses (None: torch's
    default). See the module docstring for the order."""
    env = os.environ.get("BENCH_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise BenchError(f"BENCH_THREADS={env!r} must be a whole number ≥ 1")
        return n
    if workers > 1:
        return max(1, usable_cores() // workers)
    return suite_threads


def numerics(device: torch.device, threads: int | None = None) -> str:
    """The numerics a process computes with, as one line (a run's ``bench.numerics`` tag).
    ``threads``: the CPU threads it will use (default: torch's current setting)."""
    parts = [f"device={device.type}"]
    if device.type == "cpu":
        parts.append(f"threads={threads or torch.get_num_threads()}")
    else:
        parts += [f"cudnn_benchmark={torch.backends.cudnn.benchmark}",
                  f"cudnn_deterministic={torch.backends.cudnn.deterministic}",
                  f"tf32={torch.backends.cuda.matmul.allow_tf32}"]
    parts.append(f"deterministic={torch.are_deterministic_algorithms_enabled()}")
    return " ".join(parts)


def check_numerics(records: Iterable[RunRecord], keys: set[str], mine: str, store: str) -> None:
    """Refuse to mix: the FINISHED runs of ``keys`` that were tagged with other numerics than
    ``mine`` (runs of a bench that did not tag them are not judged)."""
    theirs = Counter(r.tags[Tag.NUMERICS] for r in records
                     if r.status == FINISHED and r.key in keys and Tag.NUMERICS in r.tags
                     and r.tags[Tag.NUMERICS] != mine)
    if not theirs:
        return
    other, n = theirs.most_common(1)[0]
    hint = _how(other, mine)
    raise BenchError(f"{n} finished unit(s) of this suite in {store} were computed with "
                     f"[{other}] and this run would compute with [{mine}]: their results would "
                     f"mix numerics. {hint}, or choose another --output to start afresh")


def _how(theirs: str, mine: str) -> str:
    """How to run with ``theirs`` numerics again."""
    t = dict(p.split("=", 1) for p in theirs.split())
    m = dict(p.split("=", 1) for p in mine.split())
    if t.get("device") != m.get("device"):
        return f"To continue them, run on {t.get('device')} (the suite's device field)"
    if t.get("threads") != m.get("threads"):
        return (f"To continue them, run with BENCH_THREADS={t['threads']} (or threads: "
                f"{t['threads']} in the suite, with as many --workers as fit the cores)")
    return "To continue them, run with the same determinism settings"
