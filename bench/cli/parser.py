"""The ``bench`` argument parser: commands, options, examples (import-light: no torch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.config.profiles import PROFILES
from bench.config.protocols import METRICS
from bench.errors import EXIT_CODES
from bench.execute import EXECUTORS

EXAMPLES = {
    "run": """examples:
  bench run suites/demo.yaml --workers 2         # 2 worker processes share the work
  bench run suites/demo.yaml --set seeds.count=3 --set protocols.fine_tune.epochs=1
  bench run suites/isic2019star.yaml --profile smoke   # the whole pipeline in minutes
  bench run suites/demo.yaml --profile optuna    # max lr of every cell chosen by Optuna
  bench run suites/isic2019star.yaml --gpus 0,1,2,3    # one worker per GPU
  bench run suites/isic2019star.yaml --executor slurm  # job arrays (the suite's slurm: block)""",
    "status": """examples:
  bench status                      # the suite last run from this folder
  bench status suites/demo.yaml
  bench status --output /scratch/runs/demo
  bench status --cost                # and how well the cost model predicted the units""",
    "verify": """examples:
  bench verify suites/demo.yaml     # exit 1 and every difference when an input changed""",
    "plan": """examples:
  bench plan suites/demo.yaml                # cells, stages, trials, what is done, the cost
  bench plan suites/demo.yaml --trials       # every trial with its seeds
  bench plan suites/demo.yaml --explain      # every setting, defaults explicit
  bench plan suites/isic2019star.yaml --allow-missing   # the plan before the data is there""",
    "check": """examples:
  bench data check suites/isic2019star.yaml  # files, classes, hashes, leakage (exit 2 on a
                                             # problem, as `bench run` would)""",
    "synth": """examples:
  bench data synth /tmp/synth --images 400 --classes 4 --size 64""",
    "report": """examples:
  bench report                                  # the suite last run from this folder,
                                                # into reports/<suite>/ (markdown)
  bench report --format latex
  bench report suites/demo.yaml --format html --format csv --report-dir reports/demo
  bench report suites/demo.yaml --metric accuracy --alpha 0.01""",
    "compare": """examples:
  bench compare suites/isic2019star.yaml suites/oral_histopathology.yaml --format html
  bench compare a.yaml b.yaml --metric accuracy --report-dir reports/a-vs-b""",
    "init": """examples:
  bench init data/my_lesions                  # data/my_lesions/<class>/*.jpg → suites/my_lesions.yaml
  bench init data/dermnet --suite suites/dermnet.yaml   # train/ and test/ kept as given""",
    "welch": """example:
  bench stats welch --a 0.65701,0.02109,35 --b 0.69113,0.01117,35 --alternative less""",
}


def exit_code_text() -> str:
    """The exit-code table as ``bench --help`` prints it."""
    import textwrap

    return "exit codes:\n" + "\n".join(
        textwrap.fill(text, 88, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7)
        for code, text in EXIT_CODES.items())


def _common(p: argparse.ArgumentParser, suite_optional: bool = False) -> None:
    if suite_optional:
        p.add_argument("suite", type=Path, nargs="?", default=None,
                       help="suite YAML file (default: the suite last run from this folder, "
                            "read from the output folder's run record)")
    else:
        p.add_argument("suite", type=Path, help="suite YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a suite field, e.g. --set seeds.count=3 (repeatable)")
    p.add_argument("--output", type=Path, default=None, metavar="DIR",
                   help="the runs' output folder (default: the suite's `output`, else "
                        "runs/<name>)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: sqlite:///<output>/mlflow.db)")
    p.add_argument("--profile", choices=list(PROFILES), default=None,
                   help="smoke: 2 seeds, 1 epoch, 32 px, short searches, output <output>-smoke "
                        "(check a suite end to end in minutes); optuna: every protocol's max "
                        "lr searched by an Optuna study per cell, output <output>-optuna")


def _sub(sub: argparse._SubParsersAction, name: str, help_: str, examples: str = "",
         **kw) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_, description=kw.pop("description", help_),
                          epilog=EXAMPLES.get(examples or name),
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          allow_abbrev=False, **kw)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (kept import-light). Options are never abbreviated: ``--out`` is
    not ``--output``."""
    from bench import __version__

    parser = argparse.ArgumentParser(
        prog="bench", allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Benchmark pre-trained initialisations for small labelled image sets, "
                    "with honest statistics.",
        epilog="examples:\n  bench run suites/demo.yaml --workers 2\n  bench report "
               "--format html\n  bench COMMAND --help    # each command's options and "
               "examples\n\n" + exit_code_text(),
    )
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_run = _sub(sub, "run", "run a suite's stages and trials (resumable)")
    _common(p_run)
    p_run.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    p_run.add_argument("--workers", type=_positive, default=None, metavar="N",
                       help="run N worker processes on this machine (they share the work)")
    p_run.add_argument("--claims-uri", default=None, metavar="URI",
                       help="where runners take their leases (default: BENCH_CLAIMS_URI, else "
                            "leases.db beside mlflow.db); postgresql://… for many machines")
    p_run.add_argument("--gpus", default=None, metavar="LIST",
                       help="one worker per listed GPU, e.g. --gpus 0,1,2,3")
    p_run.add_argument("--executor", choices=list(EXECUTORS), default="local",
                       help="local (default; with --workers/--gpus: worker processes) or "
                            "slurm: job arrays through submitit, configured by the suite's "
                            "`slurm:` block")

    p_status = _sub(sub, "status", "finished / running / failed / pending per cell")
    _common(p_status, suite_optional=True)
    p_status.add_argument("--cost", action="store_true",
                          help="also the cost model's error per unit kind on the finished "
                               "units (measured vs predicted seconds)")
    _common(_sub(sub, "verify", "re-hash data, splits and weights against the manifests "
                 "recorded by the runs"))

    p_cal = _sub(sub, "calibrate", "measure this machine's throughput for the suite's unit "
                 "kinds (about a minute), for bench plan's time estimate")
    _common(p_cal)
    p_cal.add_argument("--seconds", type=float, default=60.0,
                       help="measurement time in all, warm-up and compilation aside "
                            "(default 60)")
    p_cal.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                       help="measure through torch.compile, CUDA only; the rates are kept as "
                            "<device>+compile (default: as bench run compiles, by the suite's "
                            "`compile` or BENCH_COMPILE=1)")
    p_cal.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                       help="where to measure (default: the suite's device)")

    p_plan = _sub(sub, "plan", "dry run: cells, stages, trials and their status")
    _common(p_plan)
    p_plan.add_argument("--trials", action="store_true", help="also list every trial")
    p_plan.add_argument("--explain", action="store_true",
                        help="print every init, stage and protocol fully resolved (all "
                             "defaults explicit) instead")
    p_plan.add_argument("--allow-missing", action="store_true",
                        help="list missing data and weights and exit 0 (default: exit 2)")

    p_data = _sub(sub, "data", "check a suite's data, or write the synthetic set")
    data_sub = p_data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p_check = _sub(data_sub, "check", "files, counts per class and part, manifest hashes, "
                   "leakage; exits 2 on a problem")
    _common(p_check)
    p_check.add_argument("--no-pixels", action="store_true",
                         help="skip decoding (no pixel-level leakage check)")
    p_synth = _sub(data_sub, "synth", "write the synthetic set as JPEG files + CSV")
    p_synth.add_argument("dir", type=Path, help="folder to write (images/ and labels.csv)")
    p_synth.add_argument("--images", type=int, default=400, help="number of images")
    p_synth.add_argument("--classes", type=int, default=4, help="number of classes")
    p_synth.add_argument("--size", type=int, default=64, help="image side (px)")
    p_synth.add_argument("--imbalance", type=float, default=0.5,
                         help="rarest class size / largest class size")
    p_synth.add_argument("--seed", type=int, default=0, help="generator seed")

    p_rep = _sub(sub, "report", "render the results of a suite")
    _common(p_rep, suite_optional=True)
    p_rep.add_argument("--format", dest="formats", action="append",
                       choices=["markdown", "html", "latex", "csv"],
                       help="output format (repeatable; default markdown)")
    p_rep.add_argument("--report-dir", dest="report_dir", type=Path, default=None,
                       metavar="DIR", help="folder for the report (default reports/<suite name>)")
    p_rep.add_argument("--out", dest="report_dir", type=Path, help=argparse.SUPPRESS)
    p_rep.add_argument("--metric", dest="metrics", action="append", default=None,
                       choices=list(METRICS),
                       help="metric to report (repeatable; default: the suite's)")
    p_rep.add_argument("--alpha", type=float, default=None, help="significance level")

    p_cmp = _sub(sub, "compare", "one verdict across datasets: the cells several suites "
                 "share, by mean rank, IQM and probability of improvement")
    p_cmp.add_argument("suites", type=Path, nargs="+", metavar="SUITE",
                       help="two or more suite YAML files (each from its own output folder)")
    p_cmp.add_argument("--format", dest="formats", action="append",
                       choices=["markdown", "html", "latex", "csv"],
                       help="output format (repeatable; default markdown)")
    p_cmp.add_argument("--report-dir", dest="report_dir", type=Path, default=None,
                       metavar="DIR", help="folder for the comparison (default "
                       "reports/compare-<suite>-<suite>…)")
    p_cmp.add_argument("--metric", dest="metrics", action="append", default=None,
                       choices=list(METRICS),
                       help="metric to compare (repeatable; default: the first suite's)")

    p_init = _sub(sub, "init", "write a commented starter suite for an image folder")
    p_init.add_argument("folder", type=Path, help="one sub-folder per class (or train/ and "
                        "test/ that each have them)")
    p_init.add_argument("--suite", type=Path, default=None, metavar="PATH",
                        help="where to write it (default suites/<folder name>.yaml)")
    p_init.add_argument("--name", default=None, help="the suite's name (default: the folder's)")
    p_init.add_argument("--force", action="store_true", help="overwrite an existing file")

    p_stats = _sub(sub, "stats", "tests from summary statistics (e.g. a paper's table)")
    stats_sub = p_stats.add_subparsers(dest="stats_command", required=True, metavar="TEST")
    p_welch = _sub(
        stats_sub, "welch", "Welch's t-test of A − B from MEAN,SD,N of each arm",
        description="Welch's unequal-variance t-test from summary statistics: Δ with its CI, "
                    "t, df, p, Hedges' g, and the TOST equivalence p when a margin is given.")
    p_welch.add_argument("--a", required=True, type=_moments, metavar="MEAN,SD,N",
                         help="arm A: mean, sample SD (n − 1) and n")
    p_welch.add_argument("--b", required=True, type=_moments, metavar="MEAN,SD,N",
                         help="arm B: mean, sample SD (n − 1) and n")
    p_welch.add_argument("--alternative", choices=["two-sided", "greater", "less"],
                         default="two-sided", help="greater: A > B; less: A < B")
    p_welch.add_argument("--margin", type=float, default=None,
                         help="equivalence margin: adds the TOST p of |Δ| < margin")
    p_welch.add_argument("--confidence", type=float, default=0.95, help="CI level")
    p_welch.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _positive(text: str) -> int:
    """An integer ≥ 1 (argparse reports anything else as a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return value


def _moments(text: str) -> tuple[float, float, int]:
    """``MEAN,SD,N`` → (mean, sd, n), with a message argparse shows on a bad value."""
    parts = text.split(",")
    try:
        mean, sd, n = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3 or sd < 0 or n < 2:
            raise ValueError
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give MEAN,SD,N with SD ≥ 0 and N ≥ 2, e.g. 0.657,0.021,35") from None
    return mean, sd, n
