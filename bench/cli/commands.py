"""``bench run``, ``status``, ``verify``, ``plan``, ``data`` and ``stats``: each parses nothing
and decides nothing of its own — it loads the suite (:mod:`bench.cli.context`), hands the work
on, prints the answer and returns an exit code of :data:`bench.errors.EXIT_CODES`."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.context import load, output_folder, record_run, require_store
from bench.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def _request(args: argparse.Namespace):
    """The run request of a ``bench run`` command line (the suite is validated here)."""
    from bench.execute.request import RunRequest

    _loaded, output, uri = load(args)
    output_folder(output)
    gpus = tuple(g.strip() for g in args.gpus.split(",") if g.strip()) if args.gpus else None
    return RunRequest(suite=args.suite.resolve(), output=output.resolve(), tracking_uri=uri,
                      overrides=tuple(args.overrides), profile=args.profile,
                      workers=len(gpus) if gpus else (args.workers or 1), gpus=gpus,
                      quiet=args.quiet, claims_uri=args.claims_uri)


def cmd_run(args: argparse.Namespace) -> int:
    """``bench run``: build the request, record it (``bench report`` without a suite reads it
    back), hand it to the executor."""
    import os

    from bench.execute import executor_for
    from bench.progress import make_progress

    request = _request(args)
    if "BENCH_WORKER" not in os.environ:  # the parent of --workers records it, not each worker
        record_run(request.output, args)
    name = args.executor
    if name == "local" and request.workers > 1:
        name = "workers"
    return executor_for(name).run(request, make_progress(quiet=args.quiet))


def _tracker_status(loaded, output: Path, uri: str) -> dict:
    """Each unit key's recorded status ({} when the SQLite store does not exist yet)."""
    from bench.track import Tracker, sqlite_path

    db = sqlite_path(uri)
    if db is not None and not db.exists():
        return {}
    return Tracker(uri, loaded.suite.name, output / "artifacts").status_by_key()


def cmd_status(args: argparse.Namespace) -> int:
    """``bench status``: where a suite stands, per cell (exit 2 when nothing was run there)."""
    from bench.plan import build_plan
    from bench.status import describe_status

    loaded, output, uri = load(args)
    require_store(loaded, output, uri)
    plan = build_plan(loaded, lenient=True)
    status = _tracker_status(loaded, output, uri)
    leases = None
    if any(r.status == "RUNNING" for r in status.values()):
        from bench.execute.leases import Leases, claims_uri_for

        leases = Leases(claims_uri_for(None, uri, output))
    print(describe_status(plan, status, leases))
    if args.cost:
        from bench.status import describe_cost

        print(describe_cost(plan, status))
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    """``bench calibrate``: measure this machine's throughputs for the suite's unit kinds and
    keep them in ``<output>/calibration/<device class>.json`` for ``bench plan``."""
    import os

    import torch

    from bench.execute.calibrate import calibrate, device_class, wants_compile
    from bench.execute.local import pick_device
    from bench.execute.numerics import cpu_threads
    from bench.plan import build_plan
    from bench.plan.rates import calibration_path

    loaded, output, _ = load(args)
    plan = build_plan(loaded, lenient=True)  # random weights, synthetic images: no data read
    device = pick_device(args.device or loaded.suite.device)
    threads = cpu_threads(loaded.suite.threads)
    if threads and device.type == "cpu":  # the numerics `bench run` would use
        torch.set_num_threads(threads)
    compiled = wants_compile(args.compile, loaded.suite.compile, os.environ, device)
    rates = calibrate(plan, device, args.seconds, compiled)
    path = calibration_path(output, device_class(device, compiled))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rates.to_json())
    for kind, (_, b, _) in rates.per_kind.items():
        print(f"  {kind:<24} {1 / b:>10.1f} image passes/s (forward equivalents)")
    print(f"wrote {path} ({rates.source}); bench plan now estimates the hours on it"
          + (" (with --allow-missing until the data are in place)" if plan.missing else ""))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """``bench verify``: re-hash inputs against the recorded manifests."""
    from bench.manifest import verify_suite
    from bench.plan import build_plan
    from bench.track import Tracker

    loaded, output, uri = load(args)
    require_store(loaded, output, uri)
    plan = build_plan(loaded)
    tracker = Tracker(uri, loaded.suite.name, output / "artifacts")
    text, ok = verify_suite(plan, tracker, output)
    print(text)
    return EXIT_OK if ok else EXIT_FAILED


def cmd_plan(args: argparse.Namespace) -> int:
    """``bench plan``: what would run, and what is already done; exit 2 when an input is
    missing, unless ``--allow-missing``."""
    import sys

    from bench.plan import build_plan
    from bench.plan_view import describe_plan, explain_plan

    loaded, output, uri = load(args)
    plan = build_plan(loaded, lenient=True)
    if args.explain:
        print(explain_plan(plan), end="")
    else:
        print(describe_plan(plan, _tracker_status(loaded, output, uri) or None,
                            trials=args.trials, calibrations=output / "calibration"))
    if plan.missing and not args.allow_missing:
        print(f"error: {len(plan.missing)} input(s) missing (listed above); `bench run` would "
              "refuse. Add --allow-missing to only list them.", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def cmd_data(args: argparse.Namespace) -> int:
    """``bench data check`` (exit 2 on what ``bench run`` would refuse) and ``data synth``."""
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

    loaded, output, _ = load(args)
    plan = build_plan(loaded, lenient=True)
    if plan.missing:
        print(f"{len(plan.missing)} input(s) missing:")
        for m in plan.missing:
            print(f"  - {m}")
        return EXIT_USAGE
    store = None if args.no_pixels else ImageStore(plan.datasets, cache_dir(output),
                                                   say=lambda m: print(m, flush=True))
    text, report = check_data(plan, store)
    print(text)
    return EXIT_OK if report.ok else EXIT_USAGE


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
