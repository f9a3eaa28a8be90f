"""Evaluation trials: reproducible, seed-sensitive, metrics as sklearn defines them, TTA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from bench.config.protocols import ProtocolBase, parse_protocol
from bench.data.loader import ImageSet
from bench.models.registry import seeded_backbone
from bench.seeds import trial_seeds
from bench.train.loop import state_digest
from bench.train.trial import run_trial

CPU = torch.device("cpu")


def _sets():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (72,), generator=g)
    x = torch.randint(0, 120, (72, 3, 16, 16), dtype=torch.uint8, generator=g)
    x[:, 0] += (y * 60).to(torch.uint8)[:, None, None]  # a learnable colour cue
    return ImageSet(x[:48], y[:48]), ImageSet(x[48:], y[48:])


def _proto(kind: str, **kw) -> ProtocolBase:
    return parse_protocol(dict(kind=kind, train="d:train", test="d:test", epochs=2,
                                            batch_size=12, image_size=16, **kw))


def _run(kind: str, seed: int, **kw):
    train, test = _sets()
    return run_trial(seeded_backbone("tiny_resnet_w8", 0), _proto(kind, **kw), train, test,
                     ["a", "b", "c"], trial_seeds(seed, 0, ["head", "order", "augment", "tta"]),
                     CPU)


@pytest.mark.parametrize("kind", ["fine_tune", "linear_probe"])
def test_same_trial_twice_is_identical_and_seeds_matter(kind: str) -> None:
    a, b, c = _run(kind, 0), _run(kind, 0), _run(kind, 1)
    assert a.metrics == b.metrics and np.array_equal(a.probs, b.probs)
    assert not np.array_equal(a.probs, c.probs)


def test_weighted_f1_is_sklearns() -> None:
    r = _run("fine_tune", 0)
    pred = r.probs.argmax(1)
    assert r.metrics["f1_weighted"] == pytest.approx(
        f1_score(r.labels, pred, average="weighted", zero_division=0), abs=1e-12)
    assert r.metrics["accuracy"] == pytest.approx(float((pred == r.labels).mean()))
    assert np.allclose(r.probs.sum(1), 1, atol=1e-5)


def test_linear_probe_leaves_the_encoder_unchanged() -> None:
    train, test = _sets()
    bb = seeded_backbone("tiny_resnet_w8", 0)
    before = state_digest(bb)
    run_trial(bb, _proto("linear_probe"), train, test, ["a", "b", "c"],
              trial_seeds(0, 0, ["head"]), CPU)
    assert state_digest(bb) == before
    assert _proto("linear_probe").n_warmup == 0 and _proto("fine_tune").n_warmup == 1


def test_tta_averages_k_passes() -> None:
    from bench.models.heads import Classifier
    from bench.seeds import generator
    from bench.train.evaluate import augment_for, predict

    _, test = _sets()
    model = Classifier(seeded_backbone("tiny_resnet_w8", 0), torch.nn.Linear(64, 3)).eval()
    proto = _proto("fine_tune", tta={"mode": "augment", "passes": 3})
    aug = augment_for(proto)
    got = predict(model, test, proto, aug, generator(9), CPU)
    g = generator(9)
    x = test.images.float() / 255
    with torch.no_grad():
        passes = [torch.softmax(model(aug(x, g)), 1) for _ in range(3)]
    assert np.allclose(got, (sum(passes) / 3).numpy(), atol=1e-6)
    clean = predict(model, test, _proto("fine_tune", tta={"mode": "clean"}), aug, g, CPU)
    with torch.no_grad():
        assert np.allclose(clean, torch.softmax(model(x), 1).numpy(), atol=1e-6)
