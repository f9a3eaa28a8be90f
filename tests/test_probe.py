"""HeadBank equals separate runs; Optuna lr search: no test data, resumable, seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.config.protocols import ProtocolBase, parse_protocol
from bench.data.loader import ImageSet
from bench.models.registry import seeded_backbone
from bench.protocols import protocol_for
from bench.seeds import trial_seeds
from bench.train.probe_bank import bank_eligible, run_probe_bank

CPU = torch.device("cpu")
CLASSES = ["a", "b", "c"]
SMOOTH = {"ece", "brier", "nll"}
"""Metrics of the probabilities' values, not only of their order."""


def _sets(n_train: int = 48):
    g = torch.Generator().manual_seed(0)
    n = n_train + 24
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randint(0, 120, (n, 3, 16, 16), dtype=torch.uint8, generator=g)
    x[:, 0] += (y * 60).to(torch.uint8)[:, None, None]
    return ImageSet(x[:n_train], y[:n_train]), ImageSet(x[n_train:], y[n_train:])


def _probe(**kw) -> ProtocolBase:
    base = dict(kind="linear_probe", train="d:train", test="d:test", epochs=2, batch_size=12,
                image_size=16, lr_search={"method": "fixed", "lr": 0.01})
    base.update(kw)
    return parse_protocol(base)


@pytest.mark.parametrize("kw", [{}, {"cache_features": True, "tta": {"mode": "clean"}},
                                {"warmup_epochs": 1, "sampling": "balanced"}])
def test_headbank_equals_separate_runs(kw: dict) -> None:
    train, test = _sets()
    proto = _probe(**kw)
    seeds = [trial_seeds(i, 0, ["head"]) for i in range(35)]
    bank = run_probe_bank(seeded_backbone("tiny_resnet_w8", 0), proto, train, test, CLASSES,
                          seeds, CPU, 0.01)
    for s, b in zip(seeds, bank, strict=True):
        single, = protocol_for("linear_probe").run(seeded_backbone("tiny_resnet_w8", 0), proto,
                                                   train, test, CLASSES, [s], CPU, None)
        assert np.abs(single.head - b.head).max() < 1e-5
        # counts equal exactly; the probability-based metrics to the heads' float32 rounding
        # (a batched matmul over 35 heads may sum in another order than one head's)
        assert {k: single.metrics[k] for k in SMOOTH} == pytest.approx(
            {k: b.metrics[k] for k in SMOOTH}, rel=1e-6, abs=1e-9)
        assert {k: v for k, v in single.metrics.items() if k not in SMOOTH} == \
            {k: v for k, v in b.metrics.items() if k not in SMOOTH}
        assert np.abs(single.probs - b.probs).max() < 1e-5
    assert len({round(r.metrics["f1_weighted"], 6) for r in bank}) > 1  # the heads differ


def test_bank_eligibility() -> None:
    assert bank_eligible(_probe(), ["head"])
    assert not bank_eligible(_probe(), ["head", "order"])
    assert not bank_eligible(_probe(train_bn=True), ["head"])
    assert not bank_eligible(_probe(lr_search={"method": "lr_finder", "per": "trial"}), ["head"])
    assert bank_eligible(_probe(lr_search={"method": "lr_finder", "per": "cell"}), ["head"])
    assert not bank_eligible(_probe(kind="fine_tune"), ["head"])


def _optuna_proto(**kw) -> ProtocolBase:
    lr = {"method": "optuna", "n_trials": 4, "budget_epochs": 1, "low": 1e-4, "high": 1e-1,
          "seed": 3}
    lr.update(kw)
    return _probe(kind="fine_tune", lr_search=lr, tta={"mode": "clean"})


def test_optuna_same_seed_same_lr_and_resume(tmp_path: Path) -> None:
    from bench.train.lr_search import optuna_search

    train, _ = _sets()
    seeds = trial_seeds(0, 0, ["head"])
    proto = _optuna_proto()

    def make():
        return seeded_backbone("tiny_resnet_w8", 0)

    a = optuna_search(proto, make, train, CLASSES, seeds, CPU, tmp_path / "a", "s")
    b = optuna_search(proto, make, train, CLASSES, seeds, CPU, tmp_path / "b", "s")
    assert a.lr == b.lr and len(a.trials) == 4
    assert all(proto.lr_search.low <= lr <= proto.lr_search.high for _, lr, _, _ in a.trials)

    class Stop(Exception):
        pass

    seen: list[int] = []

    def stop_after_two(number: int, lr: float, value: float | None) -> None:
        seen.append(number)
        if len(seen) == 2:
            raise Stop

    with pytest.raises(Stop):
        optuna_search(proto, make, train, CLASSES, seeds, CPU, tmp_path / "c", "s",
                      stop_after_two)
    resumed: list[int] = []
    res = optuna_search(proto, make, train, CLASSES, seeds, CPU, tmp_path / "c", "s",
                        lambda n, lr, v: resumed.append(n))
    assert resumed == [2, 3]  # the two finished candidates are not repeated
    assert len(res.trials) == 4


def test_optuna_search_never_reads_the_test_split(tiny_suite: Path, monkeypatch) -> None:
    """The search runs while every batch drawn is checked against the test tensor."""
    import bench.data.loader as loader
    import bench.train.lr_search as lr_search
    import bench.train.trial as trial_mod
    from bench.cli import main
    from bench.data.store import ImageStore

    test_ptrs: set[int] = set()
    real_get = ImageStore.get

    def get(self, ref, size, labelled=True):
        out = real_get(self, ref, size, labelled)
        if ref.endswith(":test"):
            test_ptrs.add(out.images.data_ptr())
        return out

    searching = [False]
    touched = []
    real_batches = loader.batches

    def batches(data, *a, **k):
        if searching[0] and data.images.data_ptr() in test_ptrs:
            touched.append(True)
        return real_batches(data, *a, **k)

    real_search = lr_search.optuna_search

    def search(*a, **k):
        searching[0] = True
        try:
            return real_search(*a, **k)
        finally:
            searching[0] = False

    monkeypatch.setattr(ImageStore, "get", get)
    monkeypatch.setattr(trial_mod, "batches", batches)
    monkeypatch.setattr(lr_search, "optuna_search", search)
    # poison: the test labels are all one class, so a search scoring on them would be visible
    assert main(["run", str(tiny_suite), "--set", "grid.chains=[[]]", "--set", "contrasts=[]",
                 "--set", "protocols.ft.lr_search={method: optuna, n_trials: 3, "
                 "budget_epochs: 1}", "--set", "grid.protocols=[ft]"]) == 0
    assert test_ptrs and not touched
