"""Augmentations: seeded, per-image parameters, ranges as specified."""

from __future__ import annotations

import math

import torch

from bench.seeds import generator
from bench.ssl.augment import SSLViews, TrainAugment, crop_boxes


def _batch(n: int = 16, size: int = 24) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=generator(0))


def test_same_seed_same_batch() -> None:
    x = _batch()
    views = SSLViews(size=16)
    for aug in (TrainAugment(size=16), lambda t, g: views(t, g)[1]):
        assert torch.equal(aug(x, generator(3)), aug(x, generator(3)))
        assert not torch.equal(aug(x, generator(3)), aug(x, generator(4)))


def test_views_differ_per_image() -> None:
    x = _batch(1).expand(8, -1, -1, -1).contiguous()  # one image repeated
    v1, v2 = SSLViews(size=16)(x, generator(0))
    assert not torch.equal(v1[0], v1[1])  # per-image parameters
    assert not torch.equal(v1, v2)
    assert v1.shape == (8, 3, 16, 16) and 0 <= float(v1.min()) and float(v1.max()) <= 1


def test_crop_parameter_ranges() -> None:
    b = crop_boxes(20000, (0.7, 1.0), (3 / 4, 4 / 3), generator(1))
    cx, cy, w, h = b.unbind(1)
    area = w * h
    assert float(area.min()) >= 0.7 - 1e-6 and float(area.max()) <= 1.0 + 1e-6
    log_r = torch.log(w / h)
    assert float(log_r.min()) >= math.log(3 / 4) - 1e-5
    assert float(log_r.max()) <= math.log(4 / 3) + 1e-5
    assert float((cx - w / 2).min()) >= -1e-6 and float((cx + w / 2).max()) <= 1 + 1e-6
    assert float((cy - h / 2).min()) >= -1e-6 and float((cy + h / 2).max()) <= 1 + 1e-6
    # the draws cover the whole range (not collapsed onto the fallback)
    assert float(area.min()) < 0.71 and float((area > 0.99).float().mean()) < 0.1
    one = crop_boxes(64, (0.7, 1.0), (3 / 4, 4 / 3), generator(1), per_image=False)
    assert torch.equal(one, one[:1].expand(64, 4))


def test_flip_and_rotation_probabilities() -> None:
    # a constant image is invariant to everything but flips; a ramp tells flips apart
    n = 4000
    ramp = torch.linspace(0, 1, 16).view(1, 1, 1, 16).expand(n, 3, 16, 16).contiguous()
    aug = TrainAugment(size=16, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.25,
                       rotate_p=0.0)
    out = aug(ramp, generator(2))
    flipped = (out[:, 0, 8, 0] > out[:, 0, 8, -1]).float().mean()
    assert abs(float(flipped) - 0.25) < 0.03
