"""Batch-wise image augmentations on the device, every random draw from a seeded ``torch.Generator``.

Parameters are drawn per image on the CPU from the caller's generator (so a seed fixes the batch
exactly, whatever the device), then the pixel work runs on the batch's device with ``grid_sample``
and kornia's functional colour operations.

Recipes:
- :class:`TrainAugment` — the fine-tune recipe of the paper (random resized crop, scale 0.7–1,
  ratio 3/4–4/3; horizontal flip p 0.25; rotation ±45° p 0.25 with reflection padding).
- :class:`SSLViews` — the paper's two Barlow Twins views (see ``PROTOCOL.md`` of the project docs):
  crop, centre dropout, flip, colour jitter, grayscale, gaussian blur, solarize, rotation.
All inputs and outputs are float (B, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor


def _on(t: Tensor, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """A parameter tensor drawn on the CPU, moved to ``x``'s device without a host sync (a
    blocking host-to-device copy would make the CPU wait for all queued GPU work every batch)."""
    return t.to(x.device, dtype or t.dtype, non_blocking=True)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _bernoulli(n: int, p: float, gen: torch.Generator) -> Tensor:
    return torch.rand(n, generator=gen) < p


def crop_boxes(
    n: int, scale: tuple[float, float], ratio: tuple[float, float], gen: torch.Generator,
    per_image: bool = True, attempts: int = 10,
) -> Tensor:
    """Random resized crop boxes as (n, 4) = (cx, cy, w, h) in units of a square image's side.

    torchvision's ``RandomResizedCrop`` rule, vectorised: up to ``attempts`` draws of area
    fraction ~ U(scale) and log aspect ratio ~ U(log ratio); the first whose box fits in the
    image is used, else the whole image. The centre is uniform over the positions that keep the
    box inside. With ``per_image=False`` one box is drawn and repeated (the reference code).
    """
    m = n if per_image else 1
    area = _uniform(m * attempts, *scale, gen).view(m, attempts)
    log_r = _uniform(m * attempts, math.log(ratio[0]), math.log(ratio[1]), gen).view(m, attempts)
    r = torch.exp(log_r)
    w_all, h_all = torch.sqrt(area * r), torch.sqrt(area / r)
    fits = (w_all <= 1) & (h_all <= 1)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((m,), -1))
    pick = first.clamp(min=0)[:, None]
    w = torch.where(first >= 0, w_all.gather(1, pick)[:, 0], torch.ones(m))
    h = torch.where(first >= 0, h_all.gather(1, pick)[:, 0], torch.ones(m))
    cx = w / 2 + (1 - w) * torch.rand(m, generator=gen)
    cy = h / 2 + (1 - h) * torch.rand(m, generator=gen)
    boxes = torch.stack([cx, cy, w, h], 1)
    return boxes if per_image else boxes.expand(n, 4).clone()


def apply_crop(x: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Resample the boxes of (B, 3, H, W) to (B, 3, size, size), bilinear."""
    b = x.shape[0]
    theta = torch.zeros(b, 2, 3, dtype=x.dtype)
    theta[:, 0, 0] = boxes[:, 2]
    theta[:, 1, 1] = boxes[:, 3]
    theta[:, 0, 2] = boxes[:, 0] * 2 - 1
    theta[:, 1, 2] = boxes[:, 1] * 2 - 1
    grid = F.affine_grid(_on(theta, x), [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def apply_flip_rotate(x: Tensor, flip: Tensor, angle_deg: Tensor) -> Tensor:
    """Horizontal flip where ``flip`` (B,) is True, then rotate by ``angle_deg`` (B,) with
    reflection padding. Images with no flip and angle 0 are returned unchanged. The draws live on
    the CPU (where the generator drew them), whatever the images' device: no host sync."""
    flip, angle_deg = flip.cpu(), angle_deg.cpu()
    active = flip | (angle_deg != 0)
    if not bool(active.any()):
        return x
    a = torch.deg2rad(angle_deg[active]).to(x.dtype)
    cos, sin = torch.cos(a), torch.sin(a)
    sx = torch.where(flip[active], -1.0, 1.0).to(x.dtype)
    theta = torch.zeros(int(active.sum()), 2, 3, dtype=x.dtype)
    theta[:, 0, 0] = cos * sx
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * sx
    theta[:, 1, 1] = cos
    idx = _on(active.nonzero().squeeze(1), x)
    sub = x.index_select(0, idx)
    grid = F.affine_grid(_on(theta, x), list(sub.shape), align_corners=False)
    out = x.clone()
    out[idx] = F.grid_sample(sub, grid, mode="bilinear", padding_mode="reflection",
                             align_corners=False)
    return out


@dataclass(frozen=True)
class TrainAugment:
    """The fine-tune / linear-probe train augmentation (also the TTA passes)."""

    size: int
    crop_scale: tuple[float, float] = (0.7, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.25
    rotate_p: float = 0.25
    rotate_deg: float = 45.0

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """(B, 3, H, W) → (B, 3, size, size)."""
        n = x.shape[0]
        boxes = crop_boxes(n, self.crop_scale, self.crop_ratio, gen)
        flip = _bernoulli(n, self.flip_p, gen)
        rot = _bernoulli(n, self.rotate_p, gen)
        angle = _uniform(n, -self.rotate_deg, self.rotate_deg, gen) * rot
        x = apply_crop(x, boxes, self.size)
        return apply_flip_rotate(x, flip, angle)


def resize(x: Tensor, size: int) -> Tensor:
    """Deterministic resize of (B, 3, H, W) to (B, 3, size, size) (no-op when already there)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)


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
        flip = _bernoulli(n, v.flip_p, gen)
        x = apply_flip_rotate(x, flip, torch.zeros(n))
        x = colour_jitter(x, v, gen)
        gray = _bernoulli(n, v.grayscale_p, gen)
        if bool(gray.any()):
            g = kornia.color.rgb_to_grayscale(x).expand_as(x)
            x = torch.where(_on(gray, x)[:, None, None, None], g, x)
        x = gaussian_blur(x, v, gen)
        x = solarize(x, v, gen)
        rot = _bernoulli(n, v.rotate_p, gen)
        angle = _uniform(n, -v.rotate_deg, v.rotate_deg, gen) * rot
        return apply_flip_rotate(x, torch.zeros(n, dtype=torch.bool), angle)


def centre_dropout(x: Tensor, v: ViewSpec, gen: torch.Generator) -> Tensor:
    """Zero a centred rectangle of height U{h0..h1} and width U{w0..w1} px per image (p = cutout_p).
    Sizes are in pixels of the output and clipped to the image."""
    n = x.shape[0]
    on = _bernoulli(n, v.cutout_p, gen)
    h = torch.randint(v.cutout_h[0], v.cutout_h[1] + 1, (n,), generator=gen)
    w = torch.randint(v.cutout_w[0], v.cutout_w[1] + 1, (n,), generator=gen)
    if not bool(on.any()):
        return x
    size_h, size_w = x.shape[-2:]
    dev = x.device
    rows = torch.arange(size_h, device=dev)[None, :]
    cols = torch.arange(size_w, device=dev)[None, :]
    h, w = _on(h, x)[:, None], _on(w, x)[:, None]
    top, left = (size_h - h) // 2, (size_w - w) // 2
    in_r = (rows >= top) & (rows < top + h)
    in_c = (cols >= left) & (cols < left + w)
    mask = (in_r[:, :, None] & in_c[:, None, :]) & _on(on, x)[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)


def colour_jitter(x: Tensor, v: ViewSpec, gen: torch.Generator) -> Tensor:
    """Brightness, contrast, saturation (factors ~ U(1 ± s)) and hue (shift ~ U(± hue) turns),
    applied in that order to the images drawn with probability ``jitter_p``.

    Saturation and hue are kornia's ``adjust_saturation`` then ``adjust_hue``, done in one
    RGB → HSV → RGB round trip (equal up to float rounding; a test checks it against the two
    kornia calls), and only the drawn images are transformed.
    """
    n = x.shape[0]
    on = _bernoulli(n, v.jitter_p, gen)
    b = _uniform(n, 1 - v.brightness, 1 + v.brightness, gen)
    c = _uniform(n, 1 - v.contrast, 1 + v.contrast, gen)
    s = _uniform(n, 1 - v.saturation, 1 + v.saturation, gen)
    h = _uniform(n, -v.hue, v.hue, gen)
    if not bool(on.any()):
        return x
    idx = on.nonzero().squeeze(1)
    b, c, s, h = (_on(t[idx], x, x.dtype) for t in (b, c, s, h))
    idx = _on(idx, x)
    y = (x.index_select(0, idx) * b[:, None, None, None]).clamp(0, 1)
    mean = kornia.color.rgb_to_grayscale(y).mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - mean) * c[:, None, None, None] + mean).clamp(0, 1)
    hsv = kornia.color.rgb_to_hsv(y)
    hsv = kornia.enhance.adjust_hue_raw(kornia.enhance.adjust_saturation_raw(hsv, s),
                                        h * 2 * math.pi)
    out = x.clone()
    out[idx] = kornia.color.hsv_to_rgb(hsv).clamp(0, 1)
    return out


def gaussian_blur(x: Tensor, v: ViewSpec, gen: torch.Generator) -> Tensor:
    """Gaussian blur with σ ~ U(blur_sigma) per image, kernel ``blur_kernel``, p = ``blur_p``."""
    n = x.shape[0]
    on = _bernoulli(n, v.blur_p, gen)
    sigma = _uniform(n, *v.blur_sigma, gen)
    if not bool(on.any()):
        return x
    idx = _on(on.nonzero().squeeze(1), x)
    k = min(v.blur_kernel, (min(x.shape[-2:]) // 2) * 2 - 1)
    sig = _on(sigma[on], x, x.dtype)[:, None].expand(-1, 2).contiguous()
    out = x.clone()
    out[idx] = kornia.filters.gaussian_blur2d(x.index_select(0, idx), (k, k), sig)
    return out


def solarize(x: Tensor, v: ViewSpec, gen: torch.Generator) -> Tensor:
    """kornia ``RandomSolarize(thresholds=0.1, additions=0.1)`` semantics: threshold ~ U(0.4, 0.6),
    addition ~ U(−0.1, 0.1); pixels are shifted by the addition, clipped, and those ≥ the
    threshold inverted. p = ``solarize_p``."""
    n = x.shape[0]
    on = _bernoulli(n, v.solarize_p, gen)
    thr = _uniform(n, 0.4, 0.6, gen)
    add = _uniform(n, -0.1, 0.1, gen)
    if not bool(on.any()):
        return x
    idx = _on(on.nonzero().squeeze(1), x)
    sub = x.index_select(0, idx)
    t = _on(thr[on], x, x.dtype)
    a = _on(add[on], x, x.dtype)
    out = x.clone()
    out[idx] = kornia.enhance.solarize(sub, t, a)
    return out
