"""Render report data through the Jinja2 templates (shipped in the wheel as bench/templates)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from bench.report.tables import ReportData

TEMPLATES = {"markdown": "report.md.j2", "html": "report.html.j2", "latex": "report.tex.j2",
             "latex-tables": "tables.tex.j2"}
FILENAMES = {"markdown": "report.md", "html": "report.html", "latex": "report.tex",
             "latex-tables": "tables.tex"}
FORMATS = ("markdown", "html", "latex", "csv")
EXTRA = {"latex": ("latex-tables",)}
r"""Files a format writes besides its main one: LaTeX's ``tables.tex`` (floats with labels, to
``\input`` into a paper), which the standalone ``report.tex`` includes."""

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


def md_escape(text: object) -> str:
    """User text in Markdown: HTML is shown, never interpreted; table pipes are escaped."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|"))


def pretraining(cell: object) -> str:
    """How often a cell's stages were pre-trained: — (none), '1 run', 'k runs'."""
    kind = getattr(cell, "pretraining", "none")
    if kind == "none":
        return "—"
    k = getattr(cell, "replicates", 1)
    return "1 run" if kind == "single" else f"{k} runs"


def margin_text(m: float | None) -> str:
    """A declared margin, or '–' when none was declared."""
    return "–" if m is None else f"±{m:g}"


def tex_key(text: object) -> str:
    r"""A ``\label`` key part: runs of anything but letters and digits become one ``-``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-") or "x"


def si_num(x: float | None, digits: int = 3) -> str:
    r"""A number for text: ``\num{…}`` (real minus sign, exponents set by siunitx); ``--`` when
    missing, ``$\pm\infty$`` for an open bound."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "--"
    if isinstance(x, float) and math.isinf(x):
        return r"$\infty$" if x > 0 else r"$-\infty$"
    return rf"\num{{{x:.{digits}f}}}"


def s_col(x: float | None, digits: int = 3) -> str:
    """A number in an siunitx ``S`` column (bare, aligned on the decimal marker); text in
    braces when missing or infinite."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "{" + si_num(x, digits) + "}"
    return f"{x:.{digits}f}"


def s_p(p: float | None) -> str:
    """A p-value in an ``S`` column: 3 significant digits, ``1.27e-11`` below 1e-4."""
    if p is None or not math.isfinite(p):
        return "{--}"
    return pval(p)


def si_p(p: float | None) -> str:
    r"""A p-value in text: ``\num{0.0115}``, ``\num{1.27e-11}``."""
    return "--" if p is None or not math.isfinite(p) else rf"\num{{{pval(p)}}}"


class _Names:
    """Display names of a report: ``report.labels``, else bench's own names, else the name."""

    def __init__(self, data: ReportData):
        self.spec = data.suite.report

    def label(self, name: object) -> str:
        """An encoder, cell (``encoder/protocol``, each part named), protocol or metric."""
        text = str(name)
        if text in self.spec.labels or "/" not in text:
            return self.spec.label(text)
        enc, _, proto = text.rpartition("/")
        return f"{self.spec.label(enc)}/{self.spec.label(proto)}"

    def encoder(self, cell: object) -> str:
        """A cell by its encoder's display name (within one protocol), unless it has its own."""
        name = str(cell)
        return self.spec.labels.get(name) or self.label(name.split("/")[0])

    def contrast(self, c: object) -> str:
        """A contrast's declared label, else ``A vs B`` in display names."""
        a, b, text = (getattr(c, k) for k in ("a", "b", "label"))
        return text if text and text != f"{a} vs {b}" else f"{self.label(a)} vs {self.label(b)}"


def render_files(data: ReportData, fmt: str) -> dict[str, str]:
    """File name → text of every file format ``fmt`` writes (LaTeX: report.tex and
    tables.tex)."""
    return {FILENAMES[f]: render(data, f) for f in (fmt, *EXTRA.get(fmt, ()))}


def render(data: ReportData, fmt: str) -> str:
    """The report as text in ``fmt`` (markdown, html, latex; latex-tables: the fragment)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    if fmt not in TEMPLATES:
        raise ValueError(f"unknown format {fmt!r}; available: {sorted(FORMATS)}")
    env = Environment(loader=FileSystemLoader(str(template_dir())), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                      autoescape=select_autoescape(["html.j2"]))
    env.filters.update(num=num, p=pval, tex=latex_escape, stars=stars, md=md_escape,
                       pretraining=pretraining, margin=margin_text,
                       evidence=lambda c: c.evidence)
    names = _Names(data)
    if fmt == "html":  # display names (report.labels); Jinja escapes them
        env.filters.update(lbl=names.label, enc=names.encoder, clabel=names.contrast)
    if fmt.startswith("latex"):  # numbers through siunitx; names escaped, breakable
        def lbl(name: object) -> str:
            return latex_escape(names.label(name))

        def breakable(text: str) -> str:
            return text.replace("/", r"/\allowbreak{}").replace("+", r"+\allowbreak{}")

        env.filters.update(num=lambda x, d=3: latex_escape(num(x, d)),
                           p=lambda x: latex_escape(pval(x)), si=si_num, snum=s_col,
                           sip=si_p, lbl=lbl, texkey=tex_key,
                           enc=lambda c: latex_escape(names.encoder(c)),
                           clabel=lambda c: breakable(latex_escape(names.contrast(c))))
    return env.get_template(TEMPLATES[fmt]).render(r=data)


def write_csv(data: ReportData, results: pd.DataFrame, out: Path) -> list[Path]:
    """trials.csv (one row per trial, with its MLflow ``run_id`` last), cells.csv and
    contrasts.csv (each contrast under its declared ``label``)."""
    out.mkdir(parents=True, exist_ok=True)
    trials = out / "trials.csv"
    columns = [c for c in results.columns if c != "run_id"]
    results[columns + (["run_id"] if "run_id" in results.columns else [])].to_csv(trials,
                                                                                  index=False)
    rows = []
    for c in data.cells:
        for m, s in c.metrics.items():
            clus = c.clustering.get(m)
            rows.append({"cell": c.cell, "encoder": c.encoder, "protocol": c.protocol,
                         "metric": m, "trials": c.n, "n": s.n, "non_finite": c.dropped.get(m, 0),
                         "failed": c.failed, "mean": s.mean, "sd": s.sd,
                         "ci_low": s.ci_low, "ci_high": s.ci_high, "median": s.median,
                         "q1": s.q1, "q3": s.q3, "pretraining": c.pretraining,
                         "replicates": c.replicates,
                         "icc": clus.icc if clus else math.nan,
                         "effective_n": clus.effective_n if clus else math.nan})
    cells = out / "cells.csv"
    pd.DataFrame(rows).to_csv(cells, index=False)
    crow = [_contrast_record(r) for r in data.contrasts]
    contrasts = out / "contrasts.csv"
    pd.DataFrame(crow).to_csv(contrasts, index=False)
    paths = [trials, cells, contrasts]
    if data.replication:
        rep = out / "replication.csv"
        pd.DataFrame([{"cell": x.cell, "metric": x.metric, "source": x.source,
                       "published_mean": x.published.mean, "published_sd": x.published.sd,
                       "published_n": x.published.n, "measured_mean": x.measured.mean,
                       "measured_sd": x.measured.sd, "measured_n": x.measured.n,
                       "delta": x.test.delta if x.test else math.nan,
                       "p": x.test.p if x.test else math.nan, "p_holm": x.p_holm,
                       "margin": x.margin, "tost_p_holm": x.tost_p_holm, "verdict": x.verdict}
                      for x in data.replication]).to_csv(rep, index=False)
        paths.append(rep)
    return paths


def _contrast_record(r) -> dict:
    """One contrasts.csv row: the primary test, the seed-level test, the case-level
    bootstrap and the verdicts."""
    p, case = r.primary, r.case
    return {"label": r.label, "a": r.a, "b": r.b, "metric": r.metric, "family": r.family,
            "alternative": r.alternative, "evidence": r.evidence, "scope": r.scope,
            "single_run_stages": ";".join(r.single_runs), "n_a": r.units_a, "n_b": r.units_b,
            "trials_a": r.n_a, "trials_b": r.n_b, "non_finite_a": r.dropped_a,
            "non_finite_b": r.dropped_b, "delta": p.delta, "ci_low": p.ci_low,
            "ci_high": p.ci_high, "t": p.t, "df": p.df, "p": p.p, "p_holm": r.p_holm,
            "p_bh": r.p_bh, "seed_delta": r.test.delta, "seed_ci_low": r.test.ci_low,
            "seed_ci_high": r.test.ci_high, "seed_p": r.test.p, "hedges_g": r.g,
            "g_low": r.g_low, "g_high": r.g_high, "prob_a_better": r.prob_a_better,
            "margin": r.margin, "margin_source": r.margin_source, "tost_p": r.tost_p,
            "tost_p_holm": r.tost_p_holm, "mde_80": r.mde, "mde_alpha": r.mde_alpha,
            "paired_t_p": r.paired_t_p, "wilcoxon_p": r.wilcoxon_p,
            "degenerate": r.degenerate, "opposite": r.opposite, "p_opposite": r.p_opposite,
            "case_delta": case.result.delta if case else math.nan,
            "case_ci_low": case.result.ci_low if case else math.nan,
            "case_ci_high": case.result.ci_high if case else math.nan,
            "case_p": case.result.p if case else math.nan,
            "case_p_holm": case.p_holm if case else math.nan,
            "case_groups": case.result.n_groups if case else 0,
            "case_verdict": case.verdict if case else "",
            "verdict": r.verdict, "look": r.look, "looks": r.looks, "futile": r.futile}
