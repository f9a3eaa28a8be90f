"""Seeds per source of randomness, derived from a trial seed by a documented hash.

``derive_seed(seed, source) = int(sha256(f"bench:{source}:{seed}")[:16 hex], 16) mod 2**63``.
Sources: ``head`` (classifier init), ``order`` (batch order), ``augment`` (train augmentation
draws), ``tta`` (test-time augmentation draws), ``lr_search`` (the sampler and validation split
of a per-trial optuna study; a cell-level search uses ``lr_search.seed``), ``subset`` (which
labelled images a protocol with ``label_fraction < 1`` trains on; it acts, and enters a trial's
key, only there: :func:`acting_sources`). A suite's ``seeds.vary`` lists the
sources that differ between trials; the others use the suite's base seed, so they are the same in
every trial (and, with ``vary: [head]``, matched across cells).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

SEED_SOURCES = ("head", "order", "augment", "tta", "lr_search", "subset")
"""Sources of randomness a trial seed is split into (``seeds.vary`` picks which differ)."""


def acting_sources(vary: Iterable[str], label_fraction: float) -> list[str]:
    """The sources of ``vary`` that can act on a protocol's trials, sorted: ``subset`` only
    when it trains on a fraction of its labelled images (so the keys of every other trial stay
    what they were before the source existed)."""
    return sorted(v for v in vary if v != "subset" or label_fraction < 1)

if TYPE_CHECKING:
    import torch


def derive_seed(seed: int, source: str) -> int:
    """A 63-bit seed for one source of randomness."""
    digest = hashlib.sha256(f"bench:{source}:{seed}".encode()).hexdigest()
    return int(digest[:16], 16) % (2**63)


def replicate_seed(seed: int, replicate: int) -> int:
    """The seed of replicate ``replicate`` of a stage whose seed is ``seed`` (replicate 0:
    ``seed`` itself, so its key is the unreplicated stage's; others:
    ``derive_seed(seed, "replicate<r>")``)."""
    return seed if replicate == 0 else derive_seed(seed, f"replicate{replicate}")


def path_seed(seed: int, parents: tuple[int, ...], replicate: int) -> int:
    """The seed of replicate ``replicate`` of a stage whose seed is ``seed``, trained on the
    encoder of replicate path ``parents`` (the replicate indices of the replicated stages before
    it; ``()`` when none is). Under parent path 0 (or none) it is :func:`replicate_seed`, so
    those keys never change; under any other parent path it is
    ``derive_seed(seed, "replicate<p1>.<p2>…<r>")``: each path through the replicated stages is
    an independent run of the whole chain, none sharing another's draws."""
    if not any(parents):
        return replicate_seed(seed, replicate)
    return derive_seed(seed, "replicate" + ".".join(map(str, (*parents, replicate))))


def trial_seeds(trial_seed: int, base: int, vary: Iterable[str]) -> dict[str, int]:
    """Seed of every source for one trial: varying sources use the trial seed, others ``base``."""
    vary = set(vary)
    return {s: derive_seed(trial_seed if s in vary else base, s) for s in SEED_SOURCES}


def generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``."""
    import torch

    g = torch.Generator()
    g.manual_seed(seed)
    return g
