"""Label-efficiency subsets: nested, class-stratified shares of a training part, drawn by group.

For one seed, every class's groups (patients, lesions; an image is its own group without them)
are put in one random order; the subset for a fraction f takes, per class, groups in that order
until they hold at least ⌈f · n_c⌉ of the class's n_c images (at least one group). The order
does not depend on f, so within a seed the subsets are nested (1 % ⊂ 10 % ⊂ 100 %); a group is
never split; a group is counted in the class of its first image.
"""

from __future__ import annotations

import math

import numpy as np


def label_subset(labels: np.ndarray, groups: np.ndarray, fraction: float,
                 seed: int) -> np.ndarray:
    """Sorted row indices (into ``labels`` (N,) and ``groups`` (N,)) of the subset."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return np.arange(len(labels))
    names, first, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True,
                                    return_index=True)
    group_class = np.asarray(labels)[first]
    sizes = np.bincount(codes, minlength=len(names))
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(names), bool)
    for c in np.unique(group_class):  # a fixed class order: one stream per seed
        members = np.flatnonzero(group_class == c)
        order = members[rng.permutation(len(members))]
        need = math.ceil(fraction * sizes[members].sum())
        taken = np.searchsorted(np.cumsum(sizes[order]), need) + 1
        keep[order[:taken]] = True
    return np.flatnonzero(keep[codes])


def part_subset(ds, part: str, fraction: float, seed: int) -> np.ndarray:
    """:func:`label_subset` of a dataset's part (its records' labels and groups)."""
    records = ds.part(part)
    return label_subset(ds.label_indices(records), records["group"].to_numpy(), fraction, seed)
