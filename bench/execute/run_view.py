"""How a unit's MLflow run reads in the runs table: its name, and only the parameters that act
on it (keys are computed from the whole configuration elsewhere; this is what a person reads).

- Trial runs are named seed first, ``s03 · SSL+I_SSLp/linear_probe``, so the name column stays
  readable when MLflow cuts it.
- A cell's run carries each metric's mean, SD and n over its trials, so cells compare side by
  side in the runs table.
- A parameter that cannot act is left out: the LR-finder and Optuna settings under
  ``lr_search.method: fixed`` (and the fixed ``lr`` under a search), the TTA passes of
  ``tta.mode: clean``, the training augmentation of a probe on cached features, the warm-up lr
  without warm-up epochs, the settings of an augmentation whose probability is 0 (``cutout_h`` and
  ``cutout_w`` when ``cutout_p: 0``, the jitter strengths when ``jitter_p: 0``), and for a
  ``knn`` protocol, which trains nothing, every training setting (and the augmentation unless
  ``bank_augment``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.config.protocols import KNN_IDLE

LR_SEARCH_FIELDS = {
    "fixed": ("lr",),
    "lr_finder": ("per", "start_lr", "end_lr", "num_it", "suggestion"),
    "optuna": ("per", "low", "high", "n_trials", "budget_epochs", "val_fraction", "pruner",
               "storage", "seed"),
}
"""``lr_search`` fields that act, per method (``method`` itself always does)."""

SETTINGS_OF = {"jitter_p": ("brightness", "contrast", "saturation", "hue", "jitter")}
"""Settings of a probability whose names do not start with its stem (``rotate_p`` →
``rotate_*`` needs no entry)."""


def trial_run_name(seed: int, cell_display: str) -> str:
    """``s03 · SSL+I_SSLp/linear_probe`` (seed first, two digits at least)."""
    return f"s{seed:02d} · {cell_display}"


def study_name(cell_display: str, key: str, seed: int | None = None) -> str:
    """An Optuna study's name: its cell (a trial's search: seed first) and the first 8 hex
    digits of the unit's key (``s03 · SSL+I_SSLp/linear_probe · 3f2a9c1b``)."""
    head = f"{trial_run_name(seed, cell_display)}" if seed is not None else cell_display
    return f"{head} · {key[:8]}"


def acting(view: Mapping[str, Any], name: str = "") -> dict[str, Any]:
    """``view`` (a configuration as nested dicts) without the settings that cannot act."""
    out: dict[str, Any] = {}
    for k, v in view.items():
        out[k] = acting(v, k) if isinstance(v, Mapping) else v
    if name == "lr_search" and out.get("method") in LR_SEARCH_FIELDS:
        keep = {"method", *LR_SEARCH_FIELDS[out["method"]]}
        out = {k: v for k, v in out.items() if k in keep}
    if name == "tta" and out.get("mode") == "clean":
        out.pop("passes", None)
    if out.get("cache_features") is True:  # features computed once, never augmented
        out.pop("augment", None)
    if out.get("kind") == "knn":
        for k in (*KNN_IDLE, *(() if out.get("bank_augment") else ("augment",))):
            out.pop(k, None)
    if out.get("warmup_epochs") == 0:
        out.pop("warmup_lr", None)
    for p in [k for k, v in out.items() if k.endswith("_p") and v == 0]:
        stem = p[:-1]  # "cutout_p" → "cutout_"
        idle = {k for k in out if k.startswith(stem) and k != p} | set(SETTINGS_OF.get(p, ()))
        out = {k: v for k, v in out.items() if k not in idle}
    return out


def cell_aggregates(metrics: list[str], trials: list[Mapping[str, float]]) -> dict[str, float]:
    """``<metric>_mean``, ``_sd`` (n − 1) and ``_n`` over the trials that logged the metric."""
    import math

    out: dict[str, float] = {}
    for m in metrics:
        vals = [float(t[m]) for t in trials if m in t and math.isfinite(float(t[m]))]
        if not vals:
            continue
        mean = math.fsum(vals) / len(vals)
        sd = (math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
              if len(vals) > 1 else math.nan)
        out.update({f"{m}_mean": mean, f"{m}_sd": sd, f"{m}_n": float(len(vals))})
    return out
