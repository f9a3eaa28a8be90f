"""k-nearest-neighbour evaluation on frozen features (Wu et al. 2018, "Unsupervised Feature
Learning via Non-Parametric Instance Discrimination", §3.4; the weighted vote of DINO's
``eval_knn.py`` and solo-learn's ``WeightedKNNClassifier``).

Nothing trains: the encoder's features of the training part form the bank, each test image's k
most similar bank features vote for their labels with weight exp(similarity / τ), and the
votes, normalised to sum to one, are the predicted probabilities. Without ``bank_augment`` the
result does not depend on any seed, so every trial of a cell is computed by one pass (its
trials then agree exactly, which the report shows as a degenerate contrast unless the cells'
pre-training was replicated).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.config.protocols import ProtocolBase
from bench.data.loader import ImageSet
from bench.models.heads import Normalize
from bench.models.registry import set_trainable
from bench.protocols.base import Protocol
from bench.seeds import generator
from bench.train.evaluate import EpochHook, TrialResult, augment_for
from bench.train.loop import autocast, prepare, state_digest
from bench.train.metrics import compute_metrics
from bench.train.probe_bank import encode_all

_TEST_CHUNK = 1024
"""Test images whose similarities to the whole bank are held at once."""


@torch.no_grad()
def knn_probs(bank: Tensor, bank_labels: Tensor, queries: Tensor, n_classes: int, k: int,
              temperature: float, l2_normalize: bool = True) -> Tensor:
    """(Q, C) class probabilities of ``queries`` (Q, D) from a ``bank`` (N, D) of features with
    ``bank_labels`` (N,): the k most similar bank rows (cosine similarity, or the plain dot
    product without ``l2_normalize``) vote with weight exp(s / τ); votes normalised per query.
    ``k`` is capped at N."""
    bank, queries = bank.float(), queries.float()
    if l2_normalize:
        bank, queries = F.normalize(bank, dim=1), F.normalize(queries, dim=1)
    k = min(k, len(bank))
    out = []
    for lo in range(0, len(queries), _TEST_CHUNK):
        sim = queries[lo:lo + _TEST_CHUNK] @ bank.T  # (q, N)
        top, idx = sim.topk(k, dim=1)
        # exp(s/τ) relative to the query's nearest neighbour: the same votes once normalised,
        # finite for any similarity scale
        weight = ((top - top[:, :1]) / temperature).exp()
        votes = torch.zeros(len(top), n_classes, dtype=weight.dtype, device=weight.device)
        votes.scatter_add_(1, bank_labels[idx], weight)
        out.append(votes / votes.sum(1, keepdim=True))
    return torch.cat(out)


class Knn(Protocol):
    """Every trial of a cell in one call: the test features once, the bank once (or once per
    trial's ``augment`` seed with ``bank_augment``)."""

    def bankable(self, spec: ProtocolBase, vary) -> bool:
        return True

    def run(self, backbone: nn.Module, spec: ProtocolBase, train: ImageSet, test: ImageSet,
            classes: list[str], seeds: list[dict[str, int]], device: torch.device,
            max_lr: float | None, on_epoch: EpochHook | None = None) -> list[TrialResult]:
        norm = Normalize(spec.normalize).to(device)
        backbone = prepare(backbone, device)
        set_trainable(backbone, None, False)
        backbone.eval()
        before = state_digest(backbone)
        bs = max(spec.batch_size, 256)
        aug = augment_for(spec) if spec.bank_augment else None

        def features(data: ImageSet, gen: torch.Generator | None = None) -> Tensor:
            def encode(x: Tensor) -> Tensor:
                with autocast(device, spec.precision):
                    return backbone(norm(x if gen is None else aug(x, gen)))

            return encode_all(encode, data, device, bs)

        queries = features(test)
        labels = test.labels.numpy()
        bank_labels = train.labels.to(device)
        by_bank: dict[int | None, np.ndarray] = {}
        results = []
        for s in seeds:
            which = s["augment"] if spec.bank_augment else None
            if which not in by_bank:
                bank = features(train, generator(which) if which is not None else None)
                by_bank[which] = knn_probs(bank, bank_labels, queries, len(classes), spec.k,
                                           spec.temperature, spec.l2_normalize
                                           ).cpu().numpy().astype(np.float32)
            probs = by_bank[which]
            results.append(TrialResult(metrics=compute_metrics(probs, labels, classes),
                                       probs=probs, labels=labels, max_lr=math.nan))
        if on_epoch:
            on_epoch("train", 0, math.nan)
        if state_digest(backbone) != before:
            raise AssertionError("knn changed the frozen encoder")
        return results
