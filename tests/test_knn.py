"""The kNN protocol: its votes equal an independent numpy implementation, its settings refuse
what cannot act, and a kNN cell runs, tracks and reports like any other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.config.protocols import parse_protocol
from bench.data.loader import ImageSet
from bench.models.registry import seeded_backbone
from bench.protocols import protocol_for
from bench.protocols.knn import knn_probs
from bench.seeds import trial_seeds

CPU = torch.device("cpu")
KNN = ("protocols.knn={kind: knn, train: 'tgt:train', test: 'tgt:test', image_size: 16, "
       "k: 5}")


def _numpy_knn(bank: np.ndarray, labels: np.ndarray, queries: np.ndarray, n_classes: int,
               k: int, tau: float, l2: bool) -> np.ndarray:
    """The weighted kNN vote written out, one query at a time."""
    if l2:
        bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    out = np.zeros((len(queries), n_classes))
    for i, q in enumerate(queries):
        sim = bank @ q
        nearest = np.argsort(-sim, kind="stable")[:k]
        for j in nearest:
            out[i, labels[j]] += np.exp(sim[j] / tau)
        out[i] /= out[i].sum()
    return out


@pytest.mark.parametrize(("k", "tau", "l2"), [(20, 0.07, True), (1, 0.07, True), (5, 0.5, True),
                                              (7, 1.0, False), (500, 0.07, True)])
def test_knn_votes_equal_an_independent_numpy_implementation(k: int, tau: float,
                                                             l2: bool) -> None:
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(300, 16)).astype(np.float32)
    labels = rng.integers(0, 5, 300)
    queries = rng.normal(size=(2100, 16)).astype(np.float32)  # more than one chunk of 1024
    if not l2:
        bank, queries = bank * 0.3, queries * 0.3  # raw dot products, exp stays finite
    got = knn_probs(torch.from_numpy(bank), torch.from_numpy(labels), torch.from_numpy(queries),
                    5, k, tau, l2).numpy()
    want = _numpy_knn(bank.astype(np.float64), labels, queries.astype(np.float64), 5,
                      min(k, 300), tau, l2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert (got.argmax(1) == want.argmax(1)).all()


def test_one_neighbour_is_the_nearest_ones_label_and_a_hot_vote_the_majority() -> None:
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    q = torch.tensor([[1.0, 0.05]])
    assert knn_probs(bank, labels, q, 2, 1, 0.07).tolist() == [[1.0, 0.0]]
    # all 5 vote: a tiny τ lets the nearest decide, a huge one makes it a majority vote (3 : 2)
    assert knn_probs(bank, labels, q, 2, 5, 0.01).argmax().item() == 0
    hot = knn_probs(bank, labels, q, 2, 5, 1e6)[0]
    assert hot.tolist() == pytest.approx([0.4, 0.6], abs=1e-5)


def test_knn_refuses_training_settings_and_augmented_tests() -> None:
    base = dict(kind="knn", train="d:train", test="d:test")
    spec = parse_protocol(base)
    assert (spec.k, spec.temperature, spec.l2_normalize, spec.tta.mode) == (20, 0.07, True,
                                                                            "clean")
    for bad, field in [({"epochs": 3}, "epochs"), ({"lr_search": {"method": "optuna"}},
                                                   "lr_search"), ({"warmup_epochs": 1},
                                                                  "warmup_epochs")]:
        with pytest.raises(ValueError, match=f"knn trains nothing: {field}"):
            parse_protocol({**base, **bad})
    with pytest.raises(ValueError, match=r"tta\.mode: clean"):
        parse_protocol({**base, "tta": {"mode": "augment"}})


def _sets():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (72,), generator=g)
    x = torch.randint(0, 120, (72, 3, 16, 16), dtype=torch.uint8, generator=g)
    x[:, 0] += (y * 60).to(torch.uint8)[:, None, None]
    return ImageSet(x[:48], y[:48]), ImageSet(x[48:], y[48:])


def test_knn_seeds_act_only_through_the_bank_augmentation() -> None:
    train, test = _sets()
    seeds = [trial_seeds(s, 0, ["augment"]) for s in range(3)]
    runner = protocol_for("knn")
    for augment, distinct in [(False, 1), (True, 3)]:
        spec = parse_protocol(dict(kind="knn", train="d:train", test="d:test", image_size=16,
                                   k=5, bank_augment=augment))
        res = runner.run(seeded_backbone("tiny_resnet_w8", 0), spec, train, test,
                         ["a", "b", "c"], seeds, CPU, None)
        assert len({r.probs.tobytes() for r in res}) == distinct
        assert all(np.allclose(r.probs.sum(1), 1.0) for r in res)
        again = runner.run(seeded_backbone("tiny_resnet_w8", 0), spec, train, test,
                           ["a", "b", "c"], seeds, CPU, None)
        assert [r.metrics["accuracy"] for r in again] == [r.metrics["accuracy"] for r in res]


def test_a_knn_cell_runs_tracks_and_reports(tiny_suite: Path, capsys) -> None:
    sets = ["--set", KNN, "--set", "grid.protocols=[knn, lp]", "--set",
            "contrasts=[{a: rnd+sup+bt/knn, b: rnd+sup/knn}]"]
    assert main(["run", str(tiny_suite), *sets, "-q"]) == 0
    rep = tiny_suite.parent / "rep"
    assert main(["report", str(tiny_suite), *sets, "--report-dir", str(rep), "--format", "csv",
                 "--format", "markdown"]) == 0
    trials = pd.read_csv(rep / "trials.csv")
    knn = trials[trials["protocol"] == "knn"]
    assert len(knn) == 4 and knn["status"].eq("FINISHED").all()
    for _, cell in knn.groupby("cell"):  # no seed acts: the trials agree exactly
        assert cell["accuracy"].nunique() == 1
    con = pd.read_csv(rep / "contrasts.csv")
    assert set(con["verdict"]) == {"degenerate"}  # shown as such, not as a confident p
    md = (rep / "report.md").read_text()
    assert "rnd+sup+bt/knn" in md and "both arms are constant" in md
    capsys.readouterr()
    assert main(["run", str(tiny_suite), *sets, "--set", "protocols.knn.epochs=2"]) == 2
    assert "knn trains nothing: epochs" in capsys.readouterr().err
