"""What every command needs before it works: the suite loaded, its output folder and stores, and
— for ``status`` and ``report`` without a suite — the run this folder last started.

``bench run`` leaves a run record (``<output>/run.json``: the suite file, ``--set`` overrides,
profile and tracking URI it was started with, and from which folder) and remembers it as this
folder's last run (in the user's state folder); ``bench report`` with no suite reads it back, so
``bench run suites/demo.yaml && bench report`` reports what ran.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench.errors import BenchError
from bench.procs import write_text_atomic

RUN_RECORD = "run.json"
TRACKING_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql",
                    "databricks")


def load(args: argparse.Namespace):
    """(loaded suite, output folder, tracking URI) of a command line; the URI's scheme is
    checked. A suite left out (``status``, ``report``) is the last run's (:func:`last_run`)."""
    from bench.plan import load_suite
    from bench.track import default_tracking_uri

    if getattr(args, "suite", None) is None:
        _from_run_record(args)
    loaded = load_suite(args.suite, args.overrides, profile=args.profile)
    output = args.output or loaded.output
    uri = args.tracking_uri or loaded.suite.tracking_uri or default_tracking_uri(output)
    check_uri(uri, "--tracking-uri" if args.tracking_uri else "tracking_uri")
    return loaded, output, uri


def check_uri(uri: str, field: str) -> None:
    """A tracking URI MLflow can open (its scheme), or a one-line error naming the setting."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0] if "://" in uri else "file"
    if scheme not in TRACKING_SCHEMES:
        raise BenchError(f"{field}: {uri!r} has an unsupported scheme {scheme!r}; use "
                         "sqlite:///PATH, http(s)://HOST:PORT or a database URL "
                         f"({', '.join(TRACKING_SCHEMES)})")


def output_folder(output: Path) -> Path:
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


def require_store(loaded, output: Path, uri: str) -> None:
    """A results store that exists (a SQLite file; a server is taken as it is), or an error
    saying where bench looked and how to point it at the right folder."""
    from bench.track import sqlite_path

    db = sqlite_path(uri)
    if db is not None and not db.exists():
        raise BenchError(
            f"no results of suite {loaded.suite.name!r} in {output}: {db} does not exist. Run "
            f"`bench run {loaded.path}` first, or point --output (BENCH_OUTPUT for the shipped "
            "suites) at the folder the run wrote, or run this from the folder it was started in")


def _pointer() -> Path:
    """Where this folder's last run is remembered: ``<state>/last-run/<hash of the working
    directory>.json``, ``<state>`` being ``BENCH_STATE_DIR``, else ``$XDG_STATE_HOME/bench``
    (``~/.local/state/bench``). Nothing is written into the working directory."""
    import hashlib

    state = os.environ.get("BENCH_STATE_DIR") or Path(
        os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "bench"
    here = hashlib.sha256(str(Path.cwd().resolve()).encode()).hexdigest()[:16]
    return Path(state) / "last-run" / f"{here}.json"


def record_run(output: Path, args: argparse.Namespace) -> None:
    """Write ``<output>/run.json`` and this folder's last-run pointer (atomically): what
    ``bench run`` was started with."""
    record = {"suite": str(Path(args.suite).resolve()), "overrides": list(args.overrides),
              "profile": args.profile, "tracking_uri": args.tracking_uri,
              "output": str(output.resolve()), "cwd": str(Path.cwd().resolve()),
              "started": time.time()}
    text = json.dumps(record, indent=1)
    write_text_atomic(output / RUN_RECORD, text)
    try:
        write_text_atomic(_pointer(), text)
    except OSError:  # a read-only home: `bench report` then needs the suite or --output
        pass


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "suite" in data else None


def last_run(output: Path | None = None) -> dict:
    """The run record a suite-less command uses: ``output``'s if given; else the last run
    started from this folder (while its output folder holds it); else the only run record
    under ``runs/`` (and ``$BENCH_OUTPUT``). Several or none is an error saying what to type."""
    if output is not None:
        if (rec := _read(output / RUN_RECORD)) is None:
            raise BenchError(f"no suite given, and {output} holds no run record ({RUN_RECORD}): "
                             f"give the suite, e.g. `bench report SUITE --output {output}`")
        return rec
    if (rec := _read(_pointer())) is not None and _read(Path(rec["output"]) / RUN_RECORD):
        return rec
    folders = sorted(Path("runs").glob(f"*/{RUN_RECORD}"))
    if env := os.environ.get("BENCH_OUTPUT"):
        folders.append(Path(env) / RUN_RECORD)
    records = [r for p in dict.fromkeys(folders) if (r := _read(p)) is not None]
    if len(records) == 1:
        return records[0]
    if not records:
        raise BenchError("no suite given, and no run was started from this folder (nor is "
                         f"there a runs/*/{RUN_RECORD}): give the suite, e.g. `bench report "
                         "suites/demo.yaml`, or --output DIR of a run")
    listed = "\n".join(f"  bench report {r['suite']} --output {r['output']}" for r in records)
    raise BenchError(f"no suite given, no run was started from this folder, and "
                     f"{len(records)} runs are under runs/; say which:\n{listed}")


def _from_run_record(args: argparse.Namespace) -> None:
    """Fill a suite-less command line from the last run (its own ``--set`` come after)."""
    rec = last_run(args.output)
    args.suite = Path(rec["suite"])
    args.overrides = [*rec.get("overrides", []), *args.overrides]
    args.profile = args.profile or rec.get("profile")
    args.output = args.output or (Path(rec["output"]) if rec.get("output") else None)
    args.tracking_uri = args.tracking_uri or rec.get("tracking_uri")
    print(f"suite {args.suite} (the run in {args.output})", file=sys.stderr)
