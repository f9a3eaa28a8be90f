"""The ``bench`` command: ``run``, ``plan``, ``report``.

Heavy libraries (torch, mlflow, pandas) are imported inside the commands, so ``bench --help``
answers at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bench.config.protocols import METRICS
from bench.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, BenchError
from bench.execute import EXECUTORS


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", type=Path, help="suite YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a suite field, e.g. --set seeds.count=3 (repeatable)")
    p.add_argument("--output", type=Path, default=None,
                   help="output folder (default: the suite's `output`, else runs/<name>)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: sqlite:///<output>/mlflow.db)")
    p.add_argument("--profile", choices=["smoke"], default=None,
                   help="smoke: 2 seeds, 1 epoch, 32 px, short searches, output <output>-smoke "
                        "(check a suite end to end in minutes)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (kept import-light)."""
    from bench import __version__

    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark pre-trained initialisations for small labelled image sets, "
                    "with honest statistics.",
    )
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_run = sub.add_parser("run", help="run a suite's stages and trials (resumable)")
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

    p_status = sub.add_parser("status", help="finished / running / failed / pending per cell")
    _common(p_status)

    p_verify = sub.add_parser("verify", help="re-hash data, splits and weights against the "
                              "manifests recorded by the runs")
    _common(p_verify)

    p_plan = sub.add_parser("plan", help="dry run: cells, stages, trials and their status")
    _common(p_plan)
    p_plan.add_argument("--trials", action="store_true", help="also list every trial")
    p_plan.add_argument("--explain", action="store_true",
                        help="print every init, stage and protocol fully resolved (all "
                             "defaults explicit) instead")

    p_data = sub.add_parser("data", help="check a suite's data, or write the synthetic set")
    data_sub = p_data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p_check = data_sub.add_parser("check", help="files, counts per class and part, manifest "
                                  "hashes, leakage; exits non-zero on a problem")
    _common(p_check)
    p_check.add_argument("--no-pixels", action="store_true",
                         help="skip decoding (no pixel-level leakage check)")
    p_synth = data_sub.add_parser("synth", help="write the synthetic set as JPEG files + CSV")
    p_synth.add_argument("dir", type=Path, help="folder to write (images/ and labels.csv)")
    p_synth.add_argument("--images", type=int, default=400, help="number of images")
    p_synth.add_argument("--classes", type=int, default=4, help="number of classes")
    p_synth.add_argument("--size", type=int, default=64, help="image side (px)")
    p_synth.add_argument("--imbalance", type=float, default=0.5,
                         help="rarest class size / largest class size")
    p_synth.add_argument("--seed", type=int, default=0, help="generator seed")

    p_rep = sub.add_parser("report", help="render the results of a suite")
    _common(p_rep)
    p_rep.add_argument("--format", dest="formats", action="append",
                       choices=["markdown", "html", "latex", "csv"],
                       help="output format (repeatable; default markdown)")
    p_rep.add_argument("--out", type=Path, default=None,
                       help="folder for the report (default reports/<suite name>)")
    p_rep.add_argument("--metric", dest="metrics", action="append", default=None,
                       choices=list(METRICS),
                       help="metric to report (repeatable; default: the suite's)")
    p_rep.add_argument("--alpha", type=float, default=None, help="significance level")

    p_stats = sub.add_parser("stats", help="tests from summary statistics (e.g. a paper's "
                             "table)")
    stats_sub = p_stats.add_subparsers(dest="stats_command", required=True, metavar="TEST")
    p_welch = stats_sub.add_parser(
        "welch", help="Welch's t-test of A − B from MEAN,SD,N of each arm",
        description="Welch's unequal-variance t-test from summary statistics: Δ with its CI, "
                    "t, df, p, Hedges' g, and the TOST equivalence p when a margin is given.",
        epilog="example: bench stats welch --a 0.65701,0.02109,35 --b 0.69113,0.01117,35 "
               "--alternative less")
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


def _moments(text: str):
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


def _load(args: argparse.Namespace):
    from bench.plan import load_suite

    loaded = load_suite(args.suite, args.overrides, profile=args.profile)
    output = args.output or loaded.output
    from bench.track import default_tracking_uri

    uri = args.tracking_uri or loaded.suite.tracking_uri or default_tracking_uri(output)
    _check_uri(uri, "--tracking-uri" if args.tracking_uri else "tracking_uri")
    return loaded, output, uri


TRACKING_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql",
                    "databricks")


def _check_uri(uri: str, field: str) -> None:
    """A tracking URI MLflow can open (its scheme), or a one-line error naming the setting."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0] if "://" in uri else "file"
    if scheme not in TRACKING_SCHEMES:
        raise BenchError(f"{field}: {uri!r} has an unsupported scheme {scheme!r}; use "
                         "sqlite:///PATH, http(s)://HOST:PORT or a database URL "
                         f"({', '.join(TRACKING_SCHEMES)})")


def _output_folder(output: Path) -> Path:
    """The output folder, made and writable, or a one-line error saying how to choose another."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"output folder {output}: {exc.strerror or exc} (choose another with "
                         "--output, or BENCH_OUTPUT for the shipped suites)") from exc
    if not os.access(output, os.W_OK | os.X_OK):
        raise BenchError(f"output folder {output}: not writable (choose another with --output, "
                         "or BENCH_OUTPUT for the shipped suites)")
    return output


def _request(args: argparse.Namespace):
    """The run request of a ``bench run`` command line (the suite is validated here)."""
    from bench.execute.request import RunRequest

    _loaded, output, uri = _load(args)
    _output_folder(output)
    gpus = tuple(g.strip() for g in args.gpus.split(",") if g.strip()) if args.gpus else None
    return RunRequest(suite=args.suite.resolve(), output=output.resolve(), tracking_uri=uri,
                      overrides=tuple(args.overrides), profile=args.profile,
                      workers=len(gpus) if gpus else (args.workers or 1), gpus=gpus,
                      quiet=args.quiet, claims_uri=args.claims_uri)


def cmd_run(args: argparse.Namespace) -> int:
    """``bench run``: build the request, hand it to the executor."""
    from bench.execute import executor_for
    from bench.progress import make_progress

    request = _request(args)
    name = args.executor
    if name == "local" and request.workers > 1:
        name = "workers"
    return executor_for(name).run(request, make_progress(quiet=args.quiet))


def cmd_status(args: argparse.Namespace) -> int:
    """``bench status``: where a suite stands, per cell."""
    from bench.status import describe_status

    loaded, output, uri = _load(args)
    from bench.track import sqlite_path

    db = sqlite_path(uri)
    from bench.plan import build_plan

    plan = build_plan(loaded, lenient=True)
    status = {}
    if db is None or db.exists():
        from bench.track import Tracker

        status = Tracker(uri, loaded.suite.name, output / "artifacts").status_by_key()
    leases = None
    if any(r.status == "RUNNING" for r in status.values()):
        from bench.execute.leases import Leases, claims_uri_for

        leases = Leases(claims_uri_for(None, uri, output))
    print(describe_status(plan, status, leases))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """``bench verify``: re-hash inputs against the recorded manifests."""
    from bench.manifest import verify_suite

    loaded, output, uri = _load(args)
    from bench.plan import build_plan
    from bench.track import Tracker

    plan = build_plan(loaded)
    tracker = Tracker(uri, loaded.suite.name, output / "artifacts")
    text, ok = verify_suite(plan, tracker, output)
    print(text)
    return EXIT_OK if ok else EXIT_FAILED


def cmd_plan(args: argparse.Namespace) -> int:
    """``bench plan``: what would run, and what is already done."""
    from bench.plan import build_plan
    from bench.plan_view import describe_plan

    loaded, output, uri = _load(args)
    plan = build_plan(loaded, lenient=True)
    if args.explain:
        from bench.plan_view import explain_plan

        print(explain_plan(plan), end="")
        return EXIT_OK
    status = None
    from bench.track import sqlite_path

    db = sqlite_path(uri)
    if db is None or db.exists():
        from bench.track import Tracker

        tracker = Tracker(uri, loaded.suite.name, output / "artifacts")
        status = tracker.status_by_key()
    print(describe_plan(plan, status, trials=args.trials))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """``bench report``."""
    from bench.plan import build_plan
    from bench.report.render import FILENAMES, render, write_csv
    from bench.report.tables import build_report
    from bench.results import load_results
    from bench.track import Tracker, sqlite_path

    loaded, output, uri = _load(args)
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        print(f"no results yet for suite {loaded.suite.name!r} ({db} does not exist); "
              f"run `bench run {args.suite}` first", file=sys.stderr)
        return EXIT_FAILED
    plan = build_plan(loaded)
    tracker = Tracker(uri, loaded.suite.name, output / "artifacts")
    results = load_results(plan, tracker)
    out = args.out or Path("reports") / loaded.suite.name
    out.mkdir(parents=True, exist_ok=True)
    predictions, notes = {}, []
    if loaded.suite.report.bootstrap.resamples > 0:  # case-level evidence
        from bench.contrasts import expand_contrasts
        from bench.results import load_predictions

        cells = {n for c in expand_contrasts(loaded.suite.contrasts, plan.cell_names())
                 for n in (c.a, c.b)}
        predictions, notes = load_predictions(plan, tracker, results, cells)
    data = build_report(plan, results, args.metrics, args.alpha, predictions)
    data.notes[:0] = notes
    for w in data.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if data.controls:  # known answers first: a failed control discredits every verdict
        print(data.controls_line, file=sys.stdout if data.controls_line.endswith("passed")
              else sys.stderr)
    for fmt in args.formats or ["markdown"]:
        if fmt == "csv":
            paths = write_csv(data, results, out)
        else:
            if fmt == "html" and not data.figures:
                from bench.report.figures import all_figures

                data.figures = all_figures(data, results)
            path = out / FILENAMES[fmt]
            path.write_text(render(data, fmt), encoding="utf-8")
            paths = [path]
        for path in paths:
            print(f"wrote {path}")
    return EXIT_OK


def cmd_data(args: argparse.Namespace) -> int:
    """``bench data check`` and ``bench data synth``."""
    if args.data_command == "synth":
        from bench.config.schema import SyntheticSpec
        from bench.data.synthetic import write_folder

        spec = SyntheticSpec(n_classes=args.classes, n_images=args.images, image_size=args.size,
                             imbalance=args.imbalance, seed=args.seed)
        path = write_folder(spec, args.dir)
        print(f"wrote {args.images} images and {path}")
        return EXIT_OK
    from bench.data.cache import cache_dir
    from bench.data.check import check_data
    from bench.data.store import ImageStore
    from bench.plan import build_plan

    loaded, output, _ = _load(args)
    plan = build_plan(loaded, lenient=True)
    if plan.missing:
        print(f"{len(plan.missing)} input(s) missing:")
        for m in plan.missing:
            print(f"  - {m}")
        return EXIT_FAILED
    store = None if args.no_pixels else ImageStore(plan.datasets, cache_dir(output),
                                                   say=lambda m: print(m, flush=True))
    text, report = check_data(plan, store)
    print(text)
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_stats(args: argparse.Namespace) -> int:
    """``bench stats welch``: Welch's test (and TOST) from summary statistics."""
    import json

    from bench.analysis.summary import welch_summary

    out = welch_summary(args.a, args.b, args.alternative, args.margin, args.confidence)
    if args.json:
        print(json.dumps(out))
        return EXIT_OK
    (ma, sa, na), (mb, sb, nb) = args.a, args.b
    print(f"Welch's t-test of A − B ({args.alternative}), A = {ma:g} ± {sa:g} (n = {na}), "
          f"B = {mb:g} ± {sb:g} (n = {nb})")
    if out["degenerate"]:
        print(f"  degenerate: both SDs are 0, Δ = {out['delta']:.6g} exactly; nothing to test")
        return EXIT_OK
    lo, hi = (f"{x:.6g}" if isinstance(x, float) else f"{x}"
              for x in (out["ci_low"], out["ci_high"]))
    print(f"  Δ = {out['delta']:.6g}, {100 * args.confidence:g} % CI [{lo}, {hi}]")
    print(f"  t = {out['t']:.4f}, df = {out['df']:.2f}, p = {out['p']:.3g}")
    print(f"  Hedges' g = {out['hedges_g']:.3f} [{out['g_low']:.3f}, {out['g_high']:.3f}]")
    print(f"  TOST p (|Δ| < {args.margin:g}) = {out['tost_p']:.3g}" if args.margin is not None
          else "  no equivalence test: give --margin to test |Δ| < margin")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bench`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    commands = {"run": cmd_run, "plan": cmd_plan, "report": cmd_report, "data": cmd_data,
                "status": cmd_status, "verify": cmd_verify, "stats": cmd_stats}
    try:
        return commands[args.command](args)
    except BenchError as exc:
        from bench.config.errors import SuiteError

        print(str(exc) if isinstance(exc, SuiteError) else f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
