"""Render report data through the Jinja2 templates (shipped in the wheel as bench/templates)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.report.tables import ReportData

TEMPLATES = {"markdown": "report.md.j2", "html": "report.html.j2", "latex": "report.tex.j2"}
FILENAMES = {"markdown": "report.md", "html": "report.html", "latex": "report.tex"}
FORMATS = (*TEMPLATES, "csv")

_LATEX = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
          "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
          "≻": r"$\succ$", "≈": r"$\approx$", "±": r"$\pm$", "Δ": r"$\Delta$", "–": "--",
          "α": r"$\alpha$", "∞": r"$\infty$", "≥": r"$\geq$", "≤": r"$\leq$", "−": "-", "…": r"\ldots{}",
          "·": r"$\cdot$"}


def template_dir() -> Path:
    """The installed templates (wheel), else the repository's top-level ``templates/``."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("bench's report templates are missing from the installation")


def latex_escape(text: object) -> str:
    """Escape LaTeX special characters (and map a few Unicode symbols to math)."""
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def num(x: float | None, digits: int = 3) -> str:
    """Fixed-point number, '–' for missing, ±∞ for an open bound."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{digits}f}"


def pval(x: float | None) -> str:
    """p-value: 3 significant digits, scientific below 1e-4."""
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.3g}" if x >= 1e-4 else f"{x:.2e}"


def stars(p: float | None) -> str:
    """Significance marks from an (adjusted) p-value: * < 0.05, ** < 0.01, *** < 0.001."""
    if p is None or not math.isfinite(p):
        return ""
    return "***" if p < 1e-3 else "**" if p < 1e-2 else "*" if p < 0.05 else ""


def render(data: ReportData, fmt: str) -> str:
    """The report as text in ``fmt`` (markdown, html or latex)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    if fmt not in TEMPLATES:
        raise ValueError(f"unknown format {fmt!r}; available: {sorted(FORMATS)}")
    env = Environment(loader=FileSystemLoader(str(template_dir())), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                      autoescape=select_autoescape(["html.j2"]))
    env.filters.update(num=num, p=pval, tex=latex_escape, stars=stars)
    if fmt == "latex":  # numbers may carry ∞ or − signs: escape them too
        env.filters.update(num=lambda x, d=3: latex_escape(num(x, d)),
                           p=lambda x: latex_escape(pval(x)))
    return env.get_template(TEMPLATES[fmt]).render(r=data)


def write_csv(data: ReportData, results: pd.DataFrame, out: Path) -> list[Path]:
    """trials.csv (one row per trial), cells.csv and contrasts.csv."""
    out.mkdir(parents=True, exist_ok=True)
    trials = out / "trials.csv"
    results.drop(columns=["run_id"], errors="ignore").to_csv(trials, index=False)
    rows = []
    for c in data.cells:
        for m, s in c.metrics.items():
            rows.append({"cell": c.cell, "encoder": c.encoder, "protocol": c.protocol,
                         "metric": m, "n": c.n, "failed": c.failed, "mean": s.mean, "sd": s.sd,
                         "ci_low": s.ci_low, "ci_high": s.ci_high, "median": s.median,
                         "q1": s.q1, "q3": s.q3})
    cells = out / "cells.csv"
    pd.DataFrame(rows).to_csv(cells, index=False)
    crow = [{"a": r.a, "b": r.b, "metric": r.metric, "family": r.family,
             "alternative": r.test.alternative, "n_a": r.n_a, "n_b": r.n_b,
             "delta": r.test.delta, "ci_low": r.test.ci_low, "ci_high": r.test.ci_high,
             "t": r.test.t, "df": r.test.df, "p": r.test.p, "p_holm": r.p_holm, "p_bh": r.p_bh,
             "hedges_g": r.g, "g_low": r.g_low, "g_high": r.g_high,
             "prob_a_better": r.prob_a_better, "margin": r.margin, "tost_p": r.tost_p,
             "mde_80": r.mde, "paired_t_p": r.paired_t_p, "wilcoxon_p": r.wilcoxon_p,
             "verdict": r.verdict} for r in data.contrasts]
    contrasts = out / "contrasts.csv"
    pd.DataFrame(crow).to_csv(contrasts, index=False)
    return [trials, cells, contrasts]
