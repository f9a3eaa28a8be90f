"""Start-up: wall time of ``bench --help`` and of ``bench plan`` on the paper's ISIC suite.

Each command runs in a fresh interpreter (best of 5), as a user types it; the plan uses an empty
output folder, so no tracking store is opened, and lists the suite's absent data and weights
(``--allow-missing``) as on a machine where they are not in place yet. Prints one JSON line; exit
1 when a goal is missed, 2 when a command fails.

    python benchmarks/bench_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def best_of(args: list[str], repeats: int) -> float:
    """The shortest wall time of ``bench <args>`` over ``repeats`` fresh interpreters (seconds);
    a failing command ends the benchmark (exit 2) with its output."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT,
                              capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            print(f"bench {' '.join(args)} exited {done.returncode}:\n"
                  f"{(done.stdout + done.stderr)[-2000:]}", file=sys.stderr)
            sys.exit(2)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="fresh interpreters per command")
    repeats = ap.parse_args().repeats
    with tempfile.TemporaryDirectory() as out:
        help_s = best_of(["--help"], repeats)
        plan_s = best_of(["plan", "suites/isic2019star.yaml", "--output", out,
                          "--allow-missing"], repeats)
    ok = help_s <= 1.0 and plan_s <= 3.0
    print(json.dumps({
        "benchmark": "startup", "cores": os.cpu_count(), "help_s": round(help_s, 2),
        "plan_paper_suite_s": round(plan_s, 2), "goal": "help <= 1 s, plan <= 3 s",
        "plan_suite": "suites/isic2019star.yaml (8 stages, 20 cells, 700 trials)",
    }))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
