"""Which peak lr a trial trains with: the one rule, used by the unit runner and the trial."""

from __future__ import annotations

from bench.config.training import LRSearchSpec


def resolve_lr(search: LRSearchSpec, cell_lr: float | None) -> float | str:
    """The one rule for a trial's peak lr: the cell's searched lr when it has one; else the
    fixed ``lr``; else the search that runs for this trial (``"lr_finder"``: inside the
    trial's training, ``"optuna"``: a study before it)."""
    if cell_lr is not None:
        return cell_lr
    if search.method == "fixed":
        return search.lr
    return search.method
