"""Batch-wise image augmentations on the device, every random draw from a seeded ``torch.Generator``.

The geometric primitives (crop, flip, rotation, resize) and the supervised recipe live here; the
self-supervised view recipes built from them are in :mod:`bench.ssl.augment`.

Parameters are drawn per image on the CPU from the caller's generator (so a seed fixes the batch
exactly, whatever the device), then the pixel work runs on the batch's device with ``grid_sample``
and kornia's functional colour operations.

Recipes:
- :class:`TrainAugment` — the fine-tune recipe of the paper (random resized crop, scale 0.7–1,
  ratio 3/4–4/3; horizontal flip p 0.25; rotation ±45° p 0.25 with reflection padding).
All inputs and outputs are float (B, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.config.training import AugmentSpec


def on_device(t: Tensor, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """A parameter tensor drawn on the CPU, moved to ``x``'s device without a host sync (a
    blocking host-to-device copy would make the CPU wait for all queued GPU work every batch)."""
    return t.to(x.device, dtype or t.dtype, non_blocking=True)


def uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def bernoulli(n: int, p: float, gen: torch.Generator) -> Tensor:
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
    area = uniform(m * attempts, *scale, gen).view(m, attempts)
    log_r = uniform(m * attempts, math.log(ratio[0]), math.log(ratio[1]), gen).view(m, attempts)
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
    grid = F.affine_grid(on_device(theta, x), [b, x.shape[1], size, size], align_corners=False)
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
    idx = on_device(active.nonzero().squeeze(1), x)
    sub = x.index_select(0, idx)
    grid = F.affine_grid(on_device(theta, x), list(sub.shape), align_corners=False)
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
    crop_per_image: bool = True
    """False: one crop box for the whole batch (the reference code's batch transforms)."""

    @classmethod
    def of(cls, spec: AugmentSpec, size: int) -> TrainAugment:
        """The recipe an ``augment:`` block of a suite describes, at ``size`` px."""
        return cls(size=size, crop_scale=tuple(spec.crop_scale), crop_ratio=tuple(spec.crop_ratio),
                   flip_p=spec.flip_p, rotate_p=spec.rotate_p, rotate_deg=spec.rotate_deg,
                   crop_per_image=spec.crop_per_image)

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """(B, 3, H, W) → (B, 3, size, size)."""
        n = x.shape[0]
        boxes = crop_boxes(n, self.crop_scale, self.crop_ratio, gen, self.crop_per_image)
        flip = bernoulli(n, self.flip_p, gen)
        rot = bernoulli(n, self.rotate_p, gen)
        angle = uniform(n, -self.rotate_deg, self.rotate_deg, gen) * rot
        x = apply_crop(x, boxes, self.size)
        return apply_flip_rotate(x, flip, angle)


def resize(x: Tensor, size: int) -> Tensor:
    """Deterministic resize of (B, 3, H, W) to (B, 3, size, size) (no-op when already there)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)
