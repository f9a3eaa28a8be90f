"""The ``bench`` command: ``run``, ``plan``, ``status``, ``report``, ``verify``, ``data``,
``stats``, ``init``.

A thin front: :mod:`~bench.cli.parser` parses, :mod:`~bench.cli.context` loads the suite and
finds its stores, :mod:`~bench.cli.commands` and :mod:`~bench.cli.report` hand the work on.
Every command returns one of :data:`bench.errors.EXIT_CODES`. Heavy libraries (torch, mlflow,
pandas) are imported inside the commands, so ``bench --help`` answers at once.
"""

from __future__ import annotations

import logging
import sys

from bench.cli.parser import build_parser
from bench.errors import EXIT_OK, EXIT_USAGE, BenchError

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bench`` command; returns the exit code (bare ``bench``: the help)."""
    from bench.cli.commands import (
        cmd_calibrate,
        cmd_data,
        cmd_plan,
        cmd_run,
        cmd_stats,
        cmd_status,
        cmd_verify,
    )
    from bench.cli.init import cmd_init
    from bench.cli.report import cmd_compare, cmd_report

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        parser.print_help()
        return EXIT_OK
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2, printed by argparse)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    commands = {"run": cmd_run, "plan": cmd_plan, "report": cmd_report, "data": cmd_data,
                "status": cmd_status, "verify": cmd_verify, "stats": cmd_stats, "init": cmd_init,
                "compare": cmd_compare, "calibrate": cmd_calibrate}
    try:
        return commands[args.command](args)
    except BenchError as exc:
        from bench.config.errors import SuiteError

        print(str(exc) if isinstance(exc, SuiteError) else f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
