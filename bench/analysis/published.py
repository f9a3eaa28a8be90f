"""Published numbers beside the measured ones, with a replication verdict.

A suite may declare, per cell, what a paper reported (``published: {cell: {source, accuracy:
{mean, sd, n}, …}}``). Each (cell, metric) is then tested with Welch's test from summary
statistics, measured trials against the published mean, SD and n, two-sided, Holm across the
replication family: *different* when the adjusted p is below α; *equivalent* when a margin is
declared (``published.<cell>.margin`` or ``report.margins``) and the Holm-adjusted TOST p is
below α; otherwise *inconclusive*. Without a published SD or n there is no test, and the
report says so rather than comparing means by eye.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.config.reporting import PublishedValue
from bench.config.schema import Suite
from bench.stats import Moments, Summary, WelchResult, holm, tost_moments, welch_moments

DIFFERENT, REPLICATED, NOT_TESTABLE = "different", "equivalent", "not testable"


@dataclass
class ReplicationRow:
    """One cell's published vs measured value of one metric."""

    cell: str
    metric: str
    source: str
    published: PublishedValue
    measured: Summary
    test: WelchResult | None
    margin: float | None
    tost_p: float = math.nan
    p_holm: float = math.nan
    tost_p_holm: float = math.nan
    verdict: str = "inconclusive"


def replication_rows(suite: Suite, summaries: dict[str, dict[str, Summary]], alpha: float
                     ) -> list[ReplicationRow]:
    """Every declared published value with its test and verdict (``summaries``: cell → metric
    → measured summary over the finite trial values)."""
    rows: list[ReplicationRow] = []
    for cell, pub in suite.published.items():
        for metric, value in pub.values.items():
            measured = summaries.get(cell, {}).get(metric)
            if measured is None:
                continue
            margin = pub.margin if pub.margin is not None else suite.report.margins.get(metric)
            row = ReplicationRow(cell, metric, pub.source, value, measured, None, margin)
            if value.sd is not None and value.n is not None and measured.n >= 2:
                m, p = Moments(measured.mean, measured.sd, measured.n), \
                    Moments(value.mean, value.sd, value.n)
                row.test = welch_moments(m, p)
                if margin is not None:
                    row.tost_p = tost_moments(m, p, margin)
            else:
                row.verdict = NOT_TESTABLE
            rows.append(row)
    tested = [r for r in rows if r.test is not None]
    for r, p in zip(tested, holm([r.test.p for r in tested]), strict=True):
        r.p_holm = p
    margined = [r for r in tested if r.margin is not None]
    for r, p in zip(margined, holm([r.tost_p for r in margined]), strict=True):
        r.tost_p_holm = p
    for r in tested:
        if math.isfinite(r.p_holm) and r.p_holm < alpha:
            r.verdict = DIFFERENT
        elif math.isfinite(r.tost_p_holm) and r.tost_p_holm < alpha:
            r.verdict = REPLICATED
    return rows
