"""SVG figures of a report: per-cell strip + box plots, a forest plot, Hasse diagrams,
reliability diagrams."""

from __future__ import annotations

import io
import math
from xml.sax.saxutils import escape

import pandas as pd

from bench.report.svgplot import ROW_H, RowPlot, span
from bench.report.tables import PartialOrder, ReportData

FOREST_MAX_ROWS = 80
"""A forest plot shows at most this many contrasts (the table has them all)."""
RELIABILITY_COLUMNS = 4
"""Panels per row of the reliability diagrams (one panel per cell)."""


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def plain_text(text: str) -> str:
    """A user's text as matplotlib draws it literally (no mathtext from ``$…$``)."""
    return text.replace("$", r"\$")


def strip_plot(data: ReportData, results: pd.DataFrame, metric: str) -> str:
    """One row per cell: every seed's value (jittered points) over a box plot (quartiles,
    median, whiskers to the furthest values within 1.5 IQR, as matplotlib draws them)."""
    import numpy as np

    cells = [c.cell for c in data.cells]
    fin = results[results["status"] == "FINISHED"] if len(results) else results
    values = fin[["cell", metric]].dropna() if metric in fin else pd.DataFrame(
        columns=["cell", metric])
    by_cell = {c: g[metric].to_numpy(float) for c, g in values.groupby("cell", sort=False)}
    groups = [by_cell.get(c, np.array([])) for c in cells]
    lo, hi = span(np.concatenate([*groups, [np.nan]]))
    plot = RowPlot(cells, lo, hi, metric)
    rng = np.random.default_rng(0)
    for row, g in enumerate(groups):
        if not len(g):
            continue
        q1, med, q3 = np.percentile(g, [25, 50, 75])
        iqr = q3 - q1
        w_lo, w_hi = g[g >= q1 - 1.5 * iqr].min(), g[g <= q3 + 1.5 * iqr].max()
        y, h = plot.y(row), ROW_H * 0.6
        plot.hline(row, w_lo, q1, "#333", width=1.0)  # whiskers
        plot.hline(row, q3, w_hi, "#333", width=1.0)
        plot.add(f'<rect x="{plot.x(q1):.1f}" y="{y - h / 2:.1f}" '
                 f'width="{max(plot.x(q3) - plot.x(q1), 0.5):.1f}" height="{h:.1f}" '
                 'fill="none" stroke="#333"/>')
        plot.vline(med, y - h / 2, y + h / 2, "#ff7f0e", 1.5)
        plot.dots(g, y + rng.uniform(-0.15, 0.15, len(g)) * ROW_H, "#1f77b4")
    return plot.svg()


VERDICT_COLOURS = {"A ≻ B": "#2ca02c", "B ≻ A": "#d62728", "A ≈ B": "#1f77b4"}


def forest_plot(data: ReportData, metric: str) -> str:
    """Δ = A − B with the 95 % CI of the test its verdict uses (an arrow where a one-sided
    bound is open), the case-level bootstrap CI below it (dotted) when there is one, and ticks
    at ±margin where a margin is declared."""
    rows = [r for r in data.contrasts if r.metric == metric][:FOREST_MAX_ROWS]
    cases = [r.case.result if r.case is not None else None for r in rows]
    ends = [v for r in rows for v in (r.primary.delta, r.primary.ci_low, r.primary.ci_high)]
    ends += [v for c in cases if c for v in (c.ci_low, c.ci_high)]
    ends += [0.0] + [m for r in rows if r.margin for m in (-r.margin, r.margin)]
    lo, hi = span(ends)
    plot = RowPlot([r.label for r in rows], lo, hi, f"Δ {metric} (A − B), 95 % CI")
    plot.vline(0.0, plot.top, plot.top + plot.height, "#000", 0.8)
    for i, (r, c) in enumerate(zip(rows, cases, strict=True)):
        col = VERDICT_COLOURS.get(r.verdict, "#7f7f7f")
        d, a, b = r.primary.delta, r.primary.ci_low, r.primary.ci_high
        if math.isfinite(d):
            a_end, b_end = (a if math.isfinite(a) else lo), (b if math.isfinite(b) else hi)
            marker = ' marker-start="url(#open)"' if not math.isfinite(a) else ""
            marker += ' marker-end="url(#open)"' if not math.isfinite(b) else ""
            plot.hline(i, a_end, b_end, col, extra=marker)
            plot.add(f'<circle cx="{plot.x(d):.1f}" cy="{plot.y(i):.1f}" r="3.5" fill="{col}">'
                     f"<title>{escape(r.shown_verdict)}: Δ {d:.4g}</title></circle>")
        if c is not None and math.isfinite(c.delta):
            plot.hline(i + 0.3, c.ci_low if math.isfinite(c.ci_low) else lo,
                       c.ci_high if math.isfinite(c.ci_high) else hi, "#9467bd", dash="2 2")
        if r.margin is not None:
            y = plot.y(i)
            for m in (-r.margin, r.margin):
                plot.vline(m, y - 6, y + 6, "#1f77b4", 1.5)
    return plot.svg()


def hasse_svg(order: PartialOrder) -> str:
    """The Hasse diagram of a partial order: better cells above, an arrow per covering
    relation, dashed lines for equivalence."""
    edges = order.hasse()
    level = {n: 0 for n in order.nodes}
    for _ in range(len(order.nodes)):  # longest path from the top: rank by domination
        for a, b in edges:
            level[b] = max(level[b], level[a] + 1)
    rows: dict[int, list[str]] = {}
    for n in order.nodes:
        rows.setdefault(level[n], []).append(n)
    box_w, box_h, gap_x, gap_y = 210, 26, 20, 60
    width = max(len(r) for r in rows.values()) * (box_w + gap_x) + gap_x
    height = len(rows) * (box_h + gap_y) + gap_y
    pos = {}
    for lv, names in rows.items():
        total = len(names) * (box_w + gap_x) - gap_x
        x0 = (width - total) / 2
        for i, n in enumerate(names):
            pos[n] = (x0 + i * (box_w + gap_x), gap_y / 2 + lv * (box_h + gap_y))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="11">',
           '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" '
           'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#333"/></marker></defs>']
    for a, b in edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        out.append(f'<line x1="{xa + box_w / 2:.0f}" y1="{ya + box_h:.0f}" '
                   f'x2="{xb + box_w / 2:.0f}" y2="{yb:.0f}" stroke="#333" '
                   'marker-end="url(#arrow)"/>')
    for a, b in order.opposite:  # against the declared direction: a flag, not a verdict
        (xa, ya), (xb, yb) = pos[a], pos[b]
        out.append(f'<line x1="{xa + box_w / 2:.0f}" y1="{ya + box_h / 2:.0f}" '
                   f'x2="{xb + box_w / 2:.0f}" y2="{yb + box_h / 2:.0f}" stroke="#b42318" '
                   'stroke-dasharray="2 3"><title>data point against the declared direction'
                   '</title></line>')
    for a, b in order.equivalent:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        out.append(f'<line x1="{xa + box_w / 2:.0f}" y1="{ya + box_h / 2:.0f}" '
                   f'x2="{xb + box_w / 2:.0f}" y2="{yb + box_h / 2:.0f}" stroke="#1f77b4" '
                   'stroke-dasharray="4 3"/>')
    for n, (x, y) in pos.items():
        out.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="4" '
                   'fill="#f4f6fa" stroke="#555"/>')
        out.append(f'<text x="{x + box_w / 2:.0f}" y="{y + box_h / 2 + 4:.0f}" '
                   f'text-anchor="middle">{escape(n)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def reliability_plot(data: ReportData) -> str:
    """One panel per cell: accuracy per confidence bin (bars, pooled over the cell's trials)
    against the diagonal of perfect calibration, the bin's mean confidence as a tick, and the
    pooled ECE in the panel's title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    plt.rcParams["svg.fonttype"] = "none"
    cells = [c.cell for c in data.cells if c.cell in data.reliability]
    cols = min(RELIABILITY_COLUMNS, len(cells))
    rows = -(-len(cells) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False,
                             sharex=True, sharey=True)
    for ax in axes.ravel()[len(cells):]:
        ax.set_visible(False)
    for ax, cell in zip(axes.ravel(), cells, strict=False):
        rel = data.reliability[cell]
        bins = len(rel.n)
        left = np.arange(bins) / bins
        full = rel.n > 0
        ax.bar(left[full], rel.accuracy[full], width=1 / bins, align="edge", color="#1f77b4",
               alpha=0.75, edgecolor="white", linewidth=0.5)
        ax.scatter(rel.confidence[full], rel.accuracy[full], s=6, color="#b42318", zorder=3)
        ax.plot([0, 1], [0, 1], color="#555", linestyle="--", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{plain_text(data.suite.report.label(cell))}\nECE {rel.ece:.3f} "
                     f"({rel.trials} × {rel.cases})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for i, ax in enumerate(axes.ravel()[:len(cells)]):
        if i + cols >= len(cells):  # nothing below it: its own confidence axis
            ax.tick_params(labelbottom=True)
            ax.set_xlabel("confidence", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy", fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def efficiency_plot(data: ReportData, curve) -> str:
    """Metric against labelled training images (log x): each encoder's mean with its 95 % CI
    band (over replicate means when pre-training was replicated, else over trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    plt.rcParams["svg.fonttype"] = "none"
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for encoder, points in curve.encoders.items():
        x = np.array([p.images for p in points], float)
        mean = np.array([p.summary.mean for p in points])
        low = np.array([p.summary.ci_low for p in points])
        high = np.array([p.summary.ci_high for p in points])
        (line,) = ax.plot(x, mean, marker="o", markersize=4,
                          label=plain_text(data.suite.report.label(encoder)))
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.18, linewidth=0)
    ax.set_xscale("log")
    first = next(iter(curve.encoders.values()))
    ax.set_xticks([p.images for p in first], [f"{p.images}\n({p.fraction:g})" for p in first],
                  fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("labelled training images (fraction)", fontsize=9)
    ax.set_ylabel(plain_text(data.suite.report.label(curve.metric)), fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return _svg(fig)


def all_figures(data: ReportData, results: pd.DataFrame) -> dict[str, str]:
    """Every figure of the HTML report, by name."""
    figs = {}
    for m in data.metrics:
        figs[f"strip_{m}"] = strip_plot(data, results, m)
        if any(r.metric == m for r in data.contrasts):
            figs[f"forest_{m}"] = forest_plot(data, m)
    for o in data.orders:
        if o.better or o.equivalent or o.opposite:  # an empty diagram says nothing
            figs[f"hasse_{o.metric}_{o.protocol}"] = hasse_svg(o)
    if data.reliability:
        figs["reliability"] = reliability_plot(data)
    for curve in data.efficiency:
        figs[f"efficiency_{curve.protocol}_{curve.metric}"] = efficiency_plot(data, curve)
    return figs
