"""Sequential seeds on the demo: the same verdicts with fewer trials.

``suites/demo.yaml`` with 10 seeds per pre-trained encoder, run twice into one store: first with
sequential seeds (looks after 4, 7 and 10 seeds, O'Brien–Fleming spending), then with the fixed
design, which runs only the trials the sequential run did not need (the keys are the same) and
reports every contrast at n = 10. Prints each contrast's verdict under both designs and the
trial counts, as one JSON line; exits 1 when a verdict differs.

    python benchmarks/bench_sequential.py               # the whole demo (≈ 15 min on 2 cores)
    python benchmarks/bench_sequential.py --probe-half  # its linear-probe cells only
    python benchmarks/bench_sequential.py --futility 0.1  # and a futility rule
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

SUITE = Path(__file__).resolve().parents[1] / "suites" / "demo.yaml"
SEQUENTIAL = "seeds.sequential={looks: [4, 7, 10]}"


def _bench(*args: str) -> str:
    """``bench <args>`` in this process; its stdout."""
    from bench.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(list(args))
    if rc != 0:
        sys.stderr.write(out.getvalue())
        raise SystemExit(f"bench {' '.join(args[:2])} exited {rc}")
    return out.getvalue()


def _verdicts(report: Path) -> dict[str, str]:
    rows = csv.DictReader((report / "contrasts.csv").open())
    return {f"{r['label']} [{r['metric']}]": r["verdict"] + (f" @look {r['look']}"
                                                          if r.get("look", "0") != "0" else "")
            for r in rows}


def main() -> int:
    os.environ["BENCH_THREADS"] = "1"  # `make demo`'s numerics
    probe_half = "--probe-half" in sys.argv
    design = SEQUENTIAL
    if "--futility" in sys.argv:
        futility = float(sys.argv[sys.argv.index("--futility") + 1])
        design = design.replace("}", f", futility: {futility}}}")
    sets = ["--set", "seeds.count=10"]
    if probe_half:
        import yaml

        raw = yaml.safe_load(SUITE.read_text())
        probe = [c for c in raw["contrasts"] if c["a"].endswith("/linear_probe")]
        sets += ["--set", "grid.protocols=[linear_probe]", "--set",
                 f"contrasts={json.dumps(probe)}"]
    with tempfile.TemporaryDirectory(prefix="bench-seq-") as tmp:
        out = ["--output", str(Path(tmp) / "runs"), "--quiet"]
        t0 = time.perf_counter()
        _bench("run", str(SUITE), *sets, "--set", design, *out, "--workers", "2")
        t_seq = time.perf_counter() - t0
        _bench("report", str(SUITE), *sets, "--set", design, *out[:2], "--report-dir",
               str(Path(tmp) / "seq"), "--format", "csv")
        plan_seq = _bench("plan", str(SUITE), *sets, "--set", design, *out[:2])
        t0 = time.perf_counter()
        text_fixed = _bench("run", str(SUITE), *sets, *out)
        t_fixed_rest = time.perf_counter() - t0
        _bench("report", str(SUITE), *sets, *out[:2], "--report-dir", str(Path(tmp) / "fixed"),
               "--format", "csv")
        seq, fixed = _verdicts(Path(tmp) / "seq"), _verdicts(Path(tmp) / "fixed")
    total = int(re.search(r"finished: \d+/(\d+) trials", plan_seq).group(1))
    rest = int(re.search(r"(\d+) trial\(s\) run", text_fixed).group(1))
    same = {k: seq[k].split(" @")[0] == fixed[k] for k in fixed}
    print(json.dumps({
        "benchmark": "sequential_seeds_on_the_demo", "probe_half": probe_half,
        "looks": [4, 7, 10], "design": design, "trials_fixed": total, "trials_sequential": total - rest,
        "saved": round(rest / total, 3), "sequential_run_s": round(t_seq, 1),
        "fixed_rest_s": round(t_fixed_rest, 1), "all_verdicts_equal": all(same.values()),
        "verdicts": {k: {"sequential": seq[k], "fixed": fixed[k]} for k in fixed},
    }, ensure_ascii=False))
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
