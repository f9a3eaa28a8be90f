"""Statistics on scipy and statsmodels (no hand-rolled distributions); imports nothing from bench.

- :mod:`~bench.stats.twosample` — summaries, Welch's test (from values or summary statistics),
  TOST, Hedges' g, probability of superiority, paired tests;
- :mod:`~bench.stats.multiplicity` — Holm within a family, Benjamini–Hochberg across a report;
- :mod:`~bench.stats.power` — Welch power and the minimum detectable effect;
- :mod:`~bench.stats.replicates` — replicate means, ICC and effective n of nested trials;
- :mod:`~bench.stats.bootstrap` — the paired bootstrap over test groups.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    **dict.fromkeys(("benjamini_hochberg", "holm", "holm_levels"), "multiplicity"),
    **dict.fromkeys(("min_detectable_effect", "welch_power"), "power"),
    **dict.fromkeys(("Moments", "Summary", "WelchResult", "finite", "hedges_g", "hedges_moments",
                     "paired", "pooled_sd", "prob_superiority", "summarize", "tost",
                     "tost_moments", "welch", "welch_moments"), "twosample"),
}
"""Where each name of the package lives: imported on first use (PEP 562), so that a module of
the package that needs no scipy (:mod:`~bench.stats.calibration`, which every trial uses) does
not import scipy.stats — a worker that only trains starts 0.7 s sooner."""

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value
