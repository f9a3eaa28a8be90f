"""The plan: grid expansion into cells and trials, content-addressed keys, and the DAG.

Keys (sha256, 16 hex digits shown) are functions of content, never of names or order:
- init  = H(arch, weights fingerprint)  (sha256 of the file, or of (arch, seed) when random);
- stage = H(parent key, the stage's config without cosmetic fields, data names and its
  replicate count, the hash of the data it trains on, its seed). Replicate r of a stage with
  ``replicates: k`` trains with its own seed (:func:`replicate_seed`; replicate 0 keeps the
  stage's seed, so its key is the key of the unreplicated stage and adding replicates to a
  finished suite reuses its runs); every replicate of a parent gets k replicates of the child,
  each with a seed of its own path (:func:`bench.seeds.path_seed`: a path through the replicated
  stages is an independent run of the whole chain);
- cell  = H(encoder key, the protocol's config without cosmetic fields, train/test manifest hashes);
- trial = H(cell key, trial seed, the seed sources that vary, the base seed).
So editing a description changes no key, renaming a stage changes no key, and the same stage used
by two cells (or two suites) is trained once.
"""

from bench.config.names import cell_name, chain_label, expand_cells, parse_ref
from bench.plan.build import build_plan
from bench.plan.keys import content_key, data_hash, key_view, method_digest
from bench.plan.nodes import Cell, InitNode, Plan, StageNode, Trial, replicate_label
from bench.plan.resolve import RESOLVER, load_suite

__all__ = [
    "RESOLVER", "Cell", "InitNode", "Plan", "StageNode", "Trial", "build_plan", "cell_name",
    "chain_label", "content_key", "data_hash", "expand_cells", "key_view", "load_suite",
    "method_digest", "parse_ref", "replicate_label",
]
