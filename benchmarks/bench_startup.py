"""Start-up: wall time of ``bench --help`` and of ``bench plan`` on the paper's ISIC suite.

Each command runs in a fresh interpreter (best of 5), as a user types it; the plan uses an empty
output folder, so no tracking store is opened. Prints one JSON line.

    python benchmarks/bench_startup.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 5


def best_of(args: list[str]) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        help_s = best_of(["--help"])
        plan_s = best_of(["plan", "suites/isic2019star.yaml", "--output", out])
    ok = help_s <= 1.0 and plan_s <= 3.0
    print(json.dumps({
        "benchmark": "startup", "cores": os.cpu_count(), "help_s": round(help_s, 2),
        "plan_paper_suite_s": round(plan_s, 2), "goal": "help <= 1 s, plan <= 3 s",
        "plan_suite": "suites/isic2019star.yaml (8 stages, 20 cells, 700 trials)",
    }))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
