"""Render report data through the Jinja2 templates (shipped in the wheel as bench/templates)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.report.tables import ReportData

FORMATS = {"markdown": "report.md.j2"}


def template_dir() -> Path:
    """The installed templates (wheel), else the repository's top-level ``templates/``."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("bench's report templates are missing from the installation")


def _num(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _p(x: float) -> str:
    if x is None or math.isnan(x):
        return "–"
    return f"{x:.3g}" if x >= 1e-4 else f"{x:.2e}"


def render(data: ReportData, fmt: str) -> str:
    """The report as text in ``fmt`` (``markdown``)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; available: {sorted(FORMATS)}")
    env = Environment(loader=FileSystemLoader(str(template_dir())), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["num"] = _num
    env.filters["p"] = _p
    return env.get_template(FORMATS[fmt]).render(r=data)


def write_csv(results: pd.DataFrame, out: Path) -> Path:
    """Per-trial CSV (one row per trial, metrics as columns)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "trials.csv"
    results.drop(columns=["run_id"], errors="ignore").to_csv(path, index=False)
    return path
