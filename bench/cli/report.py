"""``bench report``: the results of a suite in every format asked for, known answers first."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.cli.context import load, require_store
from bench.errors import EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """``bench report [SUITE]``: into ``--report-dir`` (default ``reports/<suite name>``); the
    suite defaults to the last one run from this folder."""
    from bench.plan import build_plan
    from bench.report.render import render_files, write_csv
    from bench.report.tables import build_report
    from bench.results import load_results
    from bench.track import Tracker

    loaded, output, uri = load(args)
    require_store(loaded, output, uri)
    plan = build_plan(loaded)
    tracker = Tracker(uri, loaded.suite.name, output / "artifacts")
    results = load_results(plan, tracker)
    out = args.report_dir or Path("reports") / loaded.suite.name
    out.mkdir(parents=True, exist_ok=True)
    formats = args.formats or ["markdown"]
    predictions, notes = {}, []
    cells: set[str] = set()
    if loaded.suite.report.bootstrap.resamples > 0:  # case-level evidence
        from bench.contrasts import expand_contrasts

        cells = {n for c in expand_contrasts(loaded.suite.contrasts, plan.cell_names())
                 for n in (c.a, c.b)}
    if "html" in formats:  # every cell's reliability diagram
        cells = set(plan.cell_names())
    if cells:
        from bench.results import load_predictions

        predictions, notes = load_predictions(plan, tracker, results, cells)
    data = build_report(plan, results, args.metrics, args.alpha, predictions)
    data.notes[:0] = notes
    for w in data.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if data.controls:  # known answers first: a failed control discredits every verdict
        print(data.controls_line, file=sys.stdout if data.controls_line.endswith("passed")
              else sys.stderr)
    for fmt in formats:
        if fmt == "csv":
            paths = write_csv(data, results, out)
        else:
            if fmt == "html" and not data.figures:
                from bench.report.figures import all_figures

                data.figures = all_figures(data, results)
            paths = []
            for name, text in render_files(data, fmt).items():
                (out / name).write_text(text, encoding="utf-8")
                paths.append(out / name)
        for path in paths:
            print(f"wrote {path}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    """``bench compare SUITE SUITE …``: the cells the suites share, across their datasets."""
    from bench.analysis import analyse
    from bench.analysis.across import Task, compare
    from bench.plan import build_plan, load_suite
    from bench.report.compare import write_comparison
    from bench.results import load_results
    from bench.track import Tracker, default_tracking_uri

    tasks, metrics = [], args.metrics
    for path in args.suites:
        loaded = load_suite(path)
        output = loaded.output
        uri = loaded.suite.tracking_uri or default_tracking_uri(output)
        require_store(loaded, output, uri)
        plan = build_plan(loaded)
        results = load_results(plan, Tracker(uri, loaded.suite.name, output / "artifacts"))
        metrics = metrics or loaded.suite.report.metrics  # default: the first suite's
        tasks.append(Task(loaded.suite.name, plan, results, analyse(plan, results, metrics)))
    comp = compare(tasks, metrics)
    out = args.report_dir or Path("reports") / ("compare-" + "-".join(t.name for t in tasks))
    for path in write_comparison(comp, args.formats or ["markdown"], out):
        print(f"wrote {path}")
    return EXIT_OK
