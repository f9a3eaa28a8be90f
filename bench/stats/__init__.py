"""Statistics on scipy and statsmodels (no hand-rolled distributions); imports nothing from bench.

- :mod:`~bench.stats.welch` — summaries, Welch's test (from values or summary statistics),
  TOST, Hedges' g, probability of superiority, paired tests;
- :mod:`~bench.stats.multiplicity` — Holm within a family, Benjamini–Hochberg across a report;
- :mod:`~bench.stats.power` — Welch power and the minimum detectable effect;
- :mod:`~bench.stats.replicates` — replicate means, ICC and effective n of nested trials;
- :mod:`~bench.stats.bootstrap` — the paired bootstrap over test groups.
"""

from bench.stats.multiplicity import benjamini_hochberg, holm, holm_levels
from bench.stats.power import min_detectable_effect, welch_power
from bench.stats.welch import (
    Moments,
    Summary,
    WelchResult,
    finite,
    hedges_g,
    hedges_moments,
    paired,
    pooled_sd,
    prob_superiority,
    summarize,
    tost,
    tost_moments,
    welch,
    welch_moments,
)

__all__ = [
    "Moments", "Summary", "WelchResult", "benjamini_hochberg", "finite", "hedges_g",
    "hedges_moments", "holm", "holm_levels", "min_detectable_effect", "paired", "pooled_sd",
    "prob_superiority", "summarize", "tost", "tost_moments", "welch", "welch_moments",
    "welch_power",
]
