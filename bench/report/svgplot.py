"""Horizontal row plots written as SVG text: the strip and forest plots of a report.

A report over thousands of trials draws them in milliseconds (matplotlib took seconds): one
row per cell or contrast, labels on the left, a linear x axis with "nice" ticks (steps of 1, 2
or 5 × 10^k), grid lines and an axis label. Points of a row with many values are one path of
round dots, so the SVG grows by a dozen bytes per point.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

import numpy as np

FONT = 11
"""Font size (px) of labels and ticks."""
CHAR_W = 6.4
"""Approximate width of a character at :data:`FONT` (sans-serif), to size the label column."""
ROW_H = 22
PLOT_W = 460


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """Round tick values covering [lo, hi] with about ``n`` steps of 1, 2 or 5 × 10^k."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def _fmt(v: float) -> str:
    return f"{v:.6g}"


class RowPlot:
    """An SVG of ``rows`` labelled rows over the x range [lo, hi] (row 0 at the top)."""

    def __init__(self, labels: list[str], lo: float, hi: float, xlabel: str):
        self.labels, self.xlabel = labels, xlabel
        self.lo, self.hi = (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)
        self.left = 12 + CHAR_W * max((len(s) for s in labels), default=4)
        self.top, self.height = 8.0, ROW_H * max(len(labels), 1)
        self.parts: list[str] = []

    def x(self, v: float) -> float:
        return self.left + (v - self.lo) / (self.hi - self.lo) * PLOT_W

    def y(self, row: float) -> float:
        return self.top + (row + 0.5) * ROW_H

    def add(self, element: str) -> None:
        self.parts.append(element)

    def line(self, x1: float, y1: float, x2: float, y2: float, colour: str = "#333",
             width: float = 1.0, extra: str = "") -> None:
        """A line between two points in pixels (``extra``: more attributes)."""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{colour}" stroke-width="{width}"{extra}/>')

    def hline(self, row: float, a: float, b: float, colour: str, dash: str = "",
              width: float = 1.5, extra: str = "") -> None:
        """A horizontal line at ``row`` from data x ``a`` to ``b``."""
        extra = (f' stroke-dasharray="{dash}"' if dash else "") + extra
        y = self.y(row)
        self.line(self.x(a), y, self.x(b), y, colour, width, extra)

    def vline(self, v: float, y1: float, y2: float, colour: str, width: float = 1.0) -> None:
        """A vertical line at data x ``v`` from pixel y ``y1`` to ``y2``."""
        self.line(self.x(v), y1, self.x(v), y2, colour, width)

    def dots(self, xs: np.ndarray, ys: np.ndarray, colour: str, size: float = 4.0,
             opacity: float = 0.6) -> None:
        """Round dots at data x ``xs`` and pixel y ``ys``, as one path."""
        if not len(xs):
            return
        px = self.left + (np.asarray(xs, float) - self.lo) / (self.hi - self.lo) * PLOT_W
        d = "".join(f"M{a:.1f} {b:.1f}h0" for a, b in zip(px, ys, strict=True))
        self.add(f'<path d="{d}" stroke="{colour}" stroke-width="{size}" '
                 f'stroke-linecap="round" stroke-opacity="{opacity}" fill="none"/>')

    def svg(self) -> str:
        """The whole figure: grid, the plot's elements, labels, x axis."""
        width = self.left + PLOT_W + 16
        bottom = self.top + self.height
        height = bottom + 42
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
               f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
               f'font-family="sans-serif" font-size="{FONT}">',
               '<defs><marker id="open" markerWidth="8" markerHeight="8" refX="7" refY="4" '
               'orient="auto"><path d="M0,0 L8,4 L0,8" fill="none" stroke="context-stroke"/>'
               '</marker></defs>']
        for t in nice_ticks(self.lo, self.hi):
            x = self.x(t)
            out.append(f'<line x1="{x:.1f}" y1="{self.top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" '
                       'stroke="#ddd"/>')
            out.append(f'<text x="{x:.1f}" y="{bottom + 14:.1f}" text-anchor="middle">'
                       f"{_fmt(t)}</text>")
        out += self.parts
        for i, label in enumerate(self.labels):
            out.append(f'<text x="{self.left - 6:.1f}" y="{self.y(i) + 4:.1f}" '
                       f'text-anchor="end">{escape(label)}</text>')
        out.append(f'<line x1="{self.left:.1f}" y1="{bottom:.1f}" x2="{self.left + PLOT_W:.1f}" '
                   f'y2="{bottom:.1f}" stroke="#333"/>')
        out.append(f'<text x="{self.left + PLOT_W / 2:.1f}" y="{bottom + 32:.1f}" '
                   f'text-anchor="middle">{escape(self.xlabel)}</text>')
        out.append("</svg>")
        return "\n".join(out)


def span(values: list[float] | np.ndarray, pad: float = 0.08) -> tuple[float, float]:
    """The finite range of ``values`` widened by ``pad`` of its width on each side."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return -1.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    width = hi - lo if hi > lo else max(abs(lo), 1.0) * 0.1
    return lo - pad * width, hi + pad * width
