"""The cross-dataset report (:mod:`bench.analysis.across`) in markdown, HTML, LaTeX and CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analysis.across import Comparison
from bench.report.render import latex_escape, md_escape, num, template_dir

TEMPLATES = {"markdown": ("compare.md.j2", "comparison.md"),
             "html": ("compare.html.j2", "comparison.html"),
             "latex": ("compare.tex.j2", "comparison.tex")}


def render_comparison(comp: Comparison, fmt: str) -> str:
    """The comparison as text in ``fmt`` (markdown, html, latex)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(str(template_dir())), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                      autoescape=select_autoescape(["html.j2"]))
    env.filters.update(num=num, md=md_escape, tex=latex_escape)
    if fmt == "latex":
        env.filters.update(num=lambda x, d=3: latex_escape(num(x, d)))
    return env.get_template(TEMPLATES[fmt][0]).render(c=comp)


def write_comparison(comp: Comparison, formats: list[str], out: Path) -> list[Path]:
    """Write every format asked for into ``out``; CSV: ``comparison.csv`` (one row per metric,
    protocol and encoder) and ``improvement.csv`` (one row per metric, protocol and pair)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        if fmt == "csv":
            rows, pairs = [], []
            for m in comp.metrics:
                for meth in m.methods:
                    row = {"metric": m.metric, "protocol": m.protocol, "encoder": meth,
                           "mean_rank": m.ranks[meth],
                           "iqm": m.iqm[meth].point, "iqm_low": m.iqm[meth].low,
                           "iqm_high": m.iqm[meth].high}
                    for task in comp.tasks:
                        row[f"{task}_mean"] = m.summaries[task][meth].mean
                        row[f"{task}_units"] = m.units[task][meth]
                    rows.append(row)
                for (a, b), iv in m.improvement.items():
                    pairs.append({"metric": m.metric, "protocol": m.protocol, "a": a, "b": b,
                                  "p_a_better": iv.point,
                                  "low": iv.low, "high": iv.high})
            for name, data in (("comparison.csv", rows), ("improvement.csv", pairs)):
                pd.DataFrame(data).to_csv(out / name, index=False)
                paths.append(out / name)
            continue
        path = out / TEMPLATES[fmt][1]
        path.write_text(render_comparison(comp, fmt), encoding="utf-8")
        paths.append(path)
    return paths
