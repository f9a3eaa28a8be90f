"""Augmentations: seeded, per-image parameters, ranges as specified."""

from __future__ import annotations

import math

import torch

from bench.data.augment import TrainAugment, crop_boxes
from bench.seeds import generator
from bench.ssl.augment import SSLViews


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


def _plain_view(**kw):
    from bench.ssl.augment import ViewSpec

    base = dict(flip_p=0, jitter_p=0, grayscale_p=0, blur_p=0, solarize_p=0, rotate_p=0,
                cutout_p=0)
    base.update(kw)
    return ViewSpec(**base)


def test_centre_dropout_sizes_per_image() -> None:
    from bench.ssl.augment import centre_dropout

    x = torch.ones(500, 3, 64, 64)
    v = _plain_view(cutout_p=1.0, cutout_h=(10, 20), cutout_w=(30, 40))
    out = centre_dropout(x, v, generator(5))
    zero = out[:, 0] == 0
    h = zero.any(2).sum(1)
    w = zero.any(1).sum(1)
    assert int(h.min()) == 10 and int(h.max()) == 20 and int(w.min()) == 30 and int(w.max()) == 40
    assert len(set(zip(h.tolist(), w.tolist(), strict=True))) > 50  # sizes differ per image
    rows = zero.any(2).float().argmax(1)
    assert torch.equal(rows, (64 - h) // 2)  # centred


def test_grayscale_and_solarize_probabilities() -> None:
    n = 4000
    x = torch.rand(n, 3, 8, 8, generator=generator(1))
    views = SSLViews(size=8, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0),
                     view1=_plain_view(grayscale_p=0.2), view2=_plain_view(solarize_p=0.2))
    gray = views.one(x, views.view1, generator(2))
    is_gray = (gray[:, 0] == gray[:, 1]).all(2).all(1) & (gray[:, 1] == gray[:, 2]).all(2).all(1)
    assert abs(float(is_gray.float().mean()) - 0.2) < 0.025
    sol = views.one(x, views.view2, generator(3))
    changed = ~torch.isclose(sol, views.one(x, _plain_view(), generator(3)), atol=1e-6)
    frac = float(changed.flatten(1).any(1).float().mean())
    assert abs(frac - 0.2) < 0.025


def test_blur_sigma_per_image_within_range() -> None:
    from bench.ssl.augment import gaussian_blur

    n = 300
    x = torch.zeros(n, 3, 31, 31)
    x[:, :, 15, 15] = 1.0  # an impulse: the blurred image is the kernel itself
    out = gaussian_blur(x, _plain_view(blur_p=1.0, blur_sigma=(0.5, 2.0), blur_kernel=31),
                        generator(4))
    centre = out[:, 0, 15, 15]
    # peak of a normalised 2-D gaussian ≈ 1 / (2πσ²): recover σ per image
    sigma = torch.sqrt(1 / (2 * math.pi * centre))
    assert float(sigma.min()) > 0.45 and float(sigma.max()) < 2.05
    assert float(sigma.std()) > 0.2  # one σ per image, not per batch


def test_colour_jitter_equals_kornia_saturation_then_hue() -> None:
    """The fused HSV round trip on the drawn subset equals kornia's two calls on every image."""
    import math

    import kornia

    from bench.ssl import augment as A

    x = torch.rand(64, 3, 32, 32, generator=generator(5))
    v = A.ViewSpec()
    fused = A.colour_jitter(x, v, generator(1))
    g, n = generator(1), 64
    on = A.bernoulli(n, v.jitter_p, g)
    b = A.uniform(n, 1 - v.brightness, 1 + v.brightness, g)
    c = A.uniform(n, 1 - v.contrast, 1 + v.contrast, g)
    s = A.uniform(n, 1 - v.saturation, 1 + v.saturation, g)
    h = A.uniform(n, -v.hue, v.hue, g)
    b, c, s = (torch.where(on, t, torch.ones(n)) for t in (b, c, s))
    h = torch.where(on, h, torch.zeros(n))
    y = (x * b[:, None, None, None]).clamp(0, 1)
    mean = kornia.color.rgb_to_grayscale(y).mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - mean) * c[:, None, None, None] + mean).clamp(0, 1)
    y = kornia.enhance.adjust_saturation(y, s).clamp(0, 1)
    y = kornia.enhance.adjust_hue(y, h * 2 * math.pi).clamp(0, 1)
    assert 0 < int(on.sum()) < n
    assert (y - fused).abs().max() < 1e-5
    assert torch.equal(fused[~on], x[~on])  # images not drawn are untouched, bit for bit
