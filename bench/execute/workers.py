"""Several worker processes on one machine: ``bench run --workers N`` or ``--gpus 0,1,…``.

Each worker is a plain ``bench run`` of the same suite (so it claims its units like any other
process); with ``--gpus`` worker *i* sees only GPU *i* (``CUDA_VISIBLE_DEVICES``), on the CPU the
cores are shared out (``BENCH_THREADS``). The parent prepares the data once (decoded cache and
leakage guard), starts the workers, prefixes their lines with ``[w<i>]``, forwards each Ctrl-C
(the first asks every worker to stop after its current checkpoint, a second stops them at once) and
returns 0 when every worker finished its work, 130 when interrupted, 1 otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bench.execute import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Executor
from bench.execute.numerics import usable_cores

if TYPE_CHECKING:
    from bench.execute.request import RunRequest
    from bench.progress import Progress


def worker_env(index: int, n: int, gpus: Sequence[str] | None) -> dict[str, str]:
    """Environment of worker ``index`` of ``n``."""
    env = {**os.environ, "BENCH_WORKER": str(index), "BENCH_PLAIN": "1",
           "PYTHONUNBUFFERED": "1"}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index]
    else:
        env.setdefault("BENCH_THREADS", str(max(1, usable_cores() // n)))  # its share of the cores
    return env


def run_workers(run_args: Sequence[str], n: int, gpus: Sequence[str] | None,
                say: Callable[[str], None]) -> int:
    """Start ``n`` workers running ``bench run <run_args>``; wait for them; return the exit code."""
    procs: list[subprocess.Popen] = []
    for i in range(n):
        procs.append(subprocess.Popen([sys.executable, "-m", "bench", "run", *run_args],
                                      env=worker_env(i, n, gpus), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True,
                                      # Ctrl-C reaches the parent only; it forwards one SIGINT
                                      # per Ctrl-C (the first: stop after the checkpoint)
                                      start_new_session=True))
    where = [f"GPU {g}" for g in gpus] if gpus else ["CPU"] * n
    say(f"started {n} worker(s): " + ", ".join(f"w{i} pid {p.pid} on {w}"
                                                for i, (p, w) in enumerate(zip(procs, where,
                                                                                strict=True))))

    def pump(i: int, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            say(f"[w{i}] {line.rstrip()}")

    readers = [threading.Thread(target=pump, args=(i, p), daemon=True)
               for i, p in enumerate(procs)]
    for t in readers:
        t.start()
    interrupted = False
    while True:
        try:
            codes = [p.wait() for p in procs]
            break
        except KeyboardInterrupt:
            interrupted = True
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
    for t in readers:
        t.join(timeout=5)
    bad = {i: c for i, c in enumerate(codes) if c != 0}
    if bad:
        say("worker exit codes: " + ", ".join(f"w{i}={c}" for i, c in bad.items()))
    if interrupted or EXIT_INTERRUPTED in codes:
        return EXIT_INTERRUPTED
    return EXIT_OK if not bad else EXIT_FAILED


class Workers(Executor):
    """``bench run --workers N`` / ``--gpus …``: the data prepared here, then N processes."""

    def run(self, request: RunRequest, progress: Progress) -> int:
        from bench.execute.local import prepared

        plan, tracker, _, _ = prepared(request, progress)
        rc = run_workers(request.argv(), request.workers, request.gpus, progress.say)
        best = tracker.status_by_key()
        counts = Counter(best[t.key].status if t.key in best else "pending" for t in plan.trials)
        print(f"trials: {counts['FINISHED']} finished, {counts['FAILED']} failed, "
              f"{counts['KILLED']} killed, {counts['RUNNING']} running, {counts['pending']} "
              f"pending of {len(plan.trials)}")
        return rc
