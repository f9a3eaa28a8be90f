"""The self-supervised view recipes, on top of :mod:`bench.data.augment`'s primitives.

- :class:`SSLViews` — the paper's two Barlow Twins views (see ``PROTOCOL.md`` of the project docs):
  crop, centre dropout, flip, colour jitter, grayscale, gaussian blur, solarize, rotation.
All inputs and outputs are float (B, 3, H, W) in [0, 1]; every draw from a seeded generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import torch
from torch import Tensor

from bench.data.augment import (
    apply_crop,
    apply_flip_rotate,
    bernoulli,
    crop_boxes,
    on_device,
    uniform,
)


@dataclass(frozen=True)
class ViewSpec:
    """Probabilities and ranges of one SSL view (the paper's table, view 1 defaults)."""

    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.24
    contrast: float = 0.24
    saturation: float = 0.12
    hue: float = 0.06
    grayscale_p: float = 0.2
    blur_p: float = 1.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 13
    solarize_p: float = 0.0
    rotate_p: float = 0.5
    rotate_deg: float = 45.0
    cutout_p: float = 0.0
    cutout_h: tuple[int, int] = (50, 100)
    cutout_w: tuple[int, int] = (185, 190)
    jitter: str = "fixed"
    """``fixed`` or ``kornia`` (see :func:`colour_jitter`)."""


@dataclass(frozen=True)
class SSLViews:
    """Two views of a batch, as Barlow Twins further pre-training in the paper draws them."""

    size: int
    view1: ViewSpec = ViewSpec()
    view2: ViewSpec = ViewSpec(blur_p=0.1, solarize_p=0.2)
    crop_scale: tuple[float, float] = (0.7, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    crop_per_image: bool = True

    def __call__(self, x: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """(B, 3, H, W) → two (B, 3, size, size) views."""
        return self.one(x, self.view1, gen), self.one(x, self.view2, gen)

    def one(self, x: Tensor, v: ViewSpec, gen: torch.Generator) -> Tensor:
        """One view: crop → cutout → flip → jitter → grayscale → blur → solarize → rotation."""
        n = x.shape[0]
        boxes = crop_boxes(n, self.crop_scale, self.crop_ratio, gen, self.crop_per_image)
        x = apply_crop(x, boxes, self.size)
        x = centre_dropout(x, v, gen)
        flip = bernoulli(n, v.flip_p, gen)
        x = apply_flip_rotate(x, flip, torch.zeros(n))
        x = colour_jitter(x, v, gen)
        gray = bernoulli(n, v.grayscale_p, gen)
        if bool(gray.any()):
            g = kornia.color.rgb_to_grayscale(x).expand_as(x)
            x = torch.where(on_device(gray, x)[:, None, None, None], g, x)
        x = gaussian_blur(x, v, gen)
        x = solarize(x, v, gen)
        rot = bernoulli(n, v.rotate_p, gen)
        angle = uniform(n, -v.rotate_deg, v.rotate_deg, gen) * rot
        return apply_flip_rotate(x, torch.zeros(n, dtype=torch.bool), angle)


def centre_dropout(x: Tensor, v: ViewSpec, gen: torch.Generator) -> Tensor:
    """Zero a centred rectangle of height U{h0..h1} and width U{w0..w1} px per image (p = cutout_p).
    Sizes are in pixels of the output and clipped to the image."""
    n = x.shape[0]
    on = bernoulli(n, v.cutout_p, gen)
    h = torch.randint(v.cutout_h[0], v.cutout_h[1] + 1, (n,), generator=gen)
    w = torch.randint(v.cutout_w[0], v.cutout_w[1] + 1, (n,), generator=gen)
    if not bool(on.any()):
        return x
    size_h, size_w = x.shape[-2:]
    dev = x.device
    rows = torch.arange(size_h, device=dev)[None, :]
    cols = torch.arange(size_w, device=dev)[None, :]
    h, w = on_device(h, x)[:, None], on_device(w, x)[:, None]
    top, left = (size_h - h) // 2, (size_w - w) // 2
    in_r = (rows >= top) & (rows < top + h)
    in_c = (cols >= left) & (cols < left + w)
    mask = (in_r[:, :, None] & in_c[:, None, :]) & on_device(on, x)[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)


def colour_jitter(x: Tensor, v: ViewSpec, gen: torch.Generator) -> Tensor:
    """Brightness, contrast, saturation (factors ~ U(1 ± s)) and hue (shift ~ U(± hue) turns),
    applied in that order to the images drawn with probability ``jitter_p``; with ``jitter:
    kornia``, kornia's ``ColorJitter`` instead: the four steps in a random order drawn once per
    batch, saturation blended with the grayscale.

    Saturation and hue are kornia's ``adjust_saturation`` then ``adjust_hue``, done in one
    RGB → HSV → RGB round trip (equal up to float rounding; a test checks it against the two
    kornia calls), and only the drawn images are transformed.
    """
    n = x.shape[0]
    on = bernoulli(n, v.jitter_p, gen)
    b = uniform(n, 1 - v.brightness, 1 + v.brightness, gen)
    c = uniform(n, 1 - v.contrast, 1 + v.contrast, gen)
    s = uniform(n, 1 - v.saturation, 1 + v.saturation, gen)
    h = uniform(n, -v.hue, v.hue, gen)
    order = torch.randperm(4, generator=gen).tolist() if v.jitter == "kornia" else None
    if not bool(on.any()):
        return x
    idx = on.nonzero().squeeze(1)
    b, c, s, h = (on_device(t[idx], x, x.dtype) for t in (b, c, s, h))
    idx = on_device(idx, x)
    if order is not None:
        out = x.clone()
        out[idx] = _kornia_jitter(x.index_select(0, idx).clamp(0, 1), (b, c, s, h), order)
        return out
    y = (x.index_select(0, idx) * b[:, None, None, None]).clamp(0, 1)
    mean = kornia.color.rgb_to_grayscale(y).mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - mean) * c[:, None, None, None] + mean).clamp(0, 1)
    hsv = kornia.color.rgb_to_hsv(y)
    hsv = kornia.enhance.adjust_hue_raw(kornia.enhance.adjust_saturation_raw(hsv, s),
                                        h * 2 * math.pi)
    out = x.clone()
    out[idx] = kornia.color.hsv_to_rgb(hsv).clamp(0, 1)
    return out


def _kornia_jitter(y: Tensor, factors: tuple[Tensor, ...], order: list[int]) -> Tensor:
    """kornia's ``ColorJitter`` steps (torchvision's formulas) in ``order`` (indices into
    brightness, contrast, saturation, hue), each clamped to [0, 1]."""
    e = kornia.enhance
    steps = (e.adjust_brightness_accumulative, e.adjust_contrast_with_mean_subtraction,
             e.adjust_saturation_with_gray_subtraction,
             lambda t, f: e.adjust_hue(t, f * 2 * math.pi))
    for i in order:
        y = steps[i](y, factors[i]).clamp(0, 1)
    return y


def gaussian_blur(x: Tensor, v: ViewSpec, gen: torch.Generator) -> Tensor:
    """Gaussian blur with σ ~ U(blur_sigma) per image, kernel ``blur_kernel``, p = ``blur_p``."""
    n = x.shape[0]
    on = bernoulli(n, v.blur_p, gen)
    sigma = uniform(n, *v.blur_sigma, gen)
    if not bool(on.any()):
        return x
    idx = on_device(on.nonzero().squeeze(1), x)
    k = min(v.blur_kernel, (min(x.shape[-2:]) // 2) * 2 - 1)
    sig = on_device(sigma[on], x, x.dtype)[:, None].expand(-1, 2).contiguous()
    out = x.clone()
    out[idx] = kornia.filters.gaussian_blur2d(x.index_select(0, idx), (k, k), sig)
    return out


def solarize(x: Tensor, v: ViewSpec, gen: torch.Generator) -> Tensor:
    """kornia ``RandomSolarize(thresholds=0.1, additions=0.1)`` semantics: threshold ~ U(0.4, 0.6),
    addition ~ U(−0.1, 0.1); pixels are shifted by the addition, clipped, and those ≥ the
    threshold inverted. p = ``solarize_p``."""
    n = x.shape[0]
    on = bernoulli(n, v.solarize_p, gen)
    thr = uniform(n, 0.4, 0.6, gen)
    add = uniform(n, -0.1, 0.1, gen)
    if not bool(on.any()):
        return x
    idx = on_device(on.nonzero().squeeze(1), x)
    sub = x.index_select(0, idx)
    t = on_device(thr[on], x, x.dtype)
    a = on_device(add[on], x, x.dtype)
    out = x.clone()
    out[idx] = kornia.enhance.solarize(sub, t, a)
    return out
