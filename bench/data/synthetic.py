"""A procedural image dataset the project generates itself (no download, deterministic by seed).

An image shows one object on a background. Four *factors* can carry its class: the object's
colour (hue), its shape (disc, square, ring, cross, triangle, bar, …), its stripe texture
(frequency) and the background's hue. ``label_factors`` says which do: each listed factor shows
the class's value, every other one shows a value drawn at random per image (so it is a nuisance
the labels ignore). By default the class sets colour, shape and texture and the background is
random, so a network must learn colour, shape and texture cues, as it would on lesions. Images
also vary in position, size, orientation, brightness and pixel noise.

Known-answer tasks come from choosing the factors. ``suites/demo.yaml`` labels its source set by
``[shape]`` (colour random) and its target set by ``[colour]`` (shape and texture random):
supervised source pre-training learns shape and discards colour, so its frozen features carry
little of the target's classes, while Barlow Twins with the paper's views (hue jittered by at
most ±0.06 of a turn, so both views of an object share its hue) keeps colour. The reverse pair
(source ``[colour]``, target ``[shape, texture]``) defeats supervised features just as well, but
a tiny ResNet pre-trained with Barlow Twins for minutes on 32 px images learns no shape either
(its linear probe stays at the majority rate), so it makes no SL-vs-SSL demonstration. Texture
takes 3 stripe frequencies (class mod 3), so beyond 3 classes it separates classes only together
with another factor. Class sizes fall geometrically from the first to the last class
(``imbalance`` = size of the rarest / size of the most frequent class).
Two datasets with different ``palette`` share shapes and textures but shift every colour, which makes a
related but distinct "source" domain for pre-training.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from bench.config.datasets import DEFAULT_FACTORS, SyntheticSpec

FACTORS = ("colour", "shape", "texture", "background")
_SHAPES = ("disc", "square", "ring", "cross", "triangle", "bar", "diamond", "dots")


def class_names(n_classes: int) -> list[str]:
    """``['c0', 'c1', …]``."""
    return [f"c{i}" for i in range(n_classes)]


def class_counts(spec: SyntheticSpec) -> list[int]:
    """Images per class: geometric decay from the first class to the last (sum = n_images)."""
    k = spec.n_classes
    weights = np.array([spec.imbalance ** (i / max(k - 1, 1)) for i in range(k)])
    raw = weights / weights.sum() * spec.n_images
    counts = np.maximum(np.floor(raw).astype(int), 1)
    for i in np.argsort(-(raw - np.floor(raw)))[: spec.n_images - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def labels(spec: SyntheticSpec) -> np.ndarray:
    """(n_images,) int labels, class by class, then shuffled with the spec's seed."""
    y = np.concatenate([np.full(c, i) for i, c in enumerate(class_counts(spec))])
    rng = np.random.default_rng([spec.seed, 1])
    return y[rng.permutation(len(y))]


def spec_digest(spec: SyntheticSpec) -> str:
    """Content hash of the generator settings (the pixels are a function of them); a field added
    later enters it only when it differs from its default, so older sets keep their digests."""
    later = {"label_factors"} if tuple(spec.label_factors) == DEFAULT_FACTORS else set()
    return hashlib.sha256(spec.model_dump_json(exclude=later).encode()).hexdigest()


def render(spec: SyntheticSpec, indices: np.ndarray | None = None) -> np.ndarray:
    """Render images as uint8 (N, 3, S, S) for the given indices (default: all)."""
    y_all = labels(spec)
    idx = np.arange(spec.n_images) if indices is None else np.asarray(indices)
    s = spec.image_size
    out = np.empty((len(idx), 3, s, s), dtype=np.uint8)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / (s - 1) * 2 - 1  # [-1, 1]
    for row, i in enumerate(idx):
        out[row] = _one(spec, int(i), int(y_all[i]), xx, yy)
    return out


def factor_values(spec: SyntheticSpec, i: int, y: int) -> dict[str, int]:
    """The class value (0 … n_classes − 1) each factor of image ``i`` (label ``y``) shows: ``y``
    for the factors in ``label_factors``, a draw of its own per image for the others."""
    nuisance = np.random.default_rng([spec.seed, 3, i])  # its own stream: labelled factors keep
    draws = nuisance.integers(0, spec.n_classes, size=len(FACTORS))  # their pixels
    return {f: y if f in spec.label_factors else int(d)
            for f, d in zip(FACTORS, draws, strict=True)}


def _one(spec: SyntheticSpec, i: int, y: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng([spec.seed, 2, i])
    k = spec.n_classes
    nz = spec.noise
    f = factor_values(spec, i, y)
    # class appearance
    hue = ((f["colour"] / k) + 0.37 * spec.palette + rng.normal(0, 0.04 * (1 + nz))) % 1.0
    shape = _SHAPES[f["shape"] % len(_SHAPES)]
    freq = 2.0 + 1.5 * (f["texture"] % 3) + rng.normal(0, 0.3 * nz)
    # nuisance: placement, size, orientation, lighting, background
    cx, cy = rng.uniform(-0.3, 0.3, size=2)
    r = rng.uniform(0.35, 0.6)
    theta = rng.uniform(0, math.pi)
    c, s_ = math.cos(theta), math.sin(theta)
    u = ((xx - cx) * c + (yy - cy) * s_) / r
    v = (-(xx - cx) * s_ + (yy - cy) * c) / r
    mask = _shape_mask(shape, u, v)
    fg = np.array(_hsv_to_rgb(hue, 0.75, 0.85), dtype=np.float32)
    bg_hue = rng.uniform(0.02, 0.12)
    if "background" in spec.label_factors:  # a class hue of its own, away from the objects'
        bg_hue = (f["background"] / k + 0.5 / k + 0.19 * spec.palette) % 1.0
    bg = np.array(_hsv_to_rgb(bg_hue, rng.uniform(0.2, 0.4), rng.uniform(0.55, 0.9)))
    stripes = 0.5 + 0.5 * np.sin(freq * math.pi * u + rng.uniform(0, 2 * math.pi))
    light = rng.uniform(0.75, 1.1)
    img = bg[:, None, None] * (1 - mask) + fg[:, None, None] * mask * (0.65 + 0.35 * stripes)
    img = img * light + rng.normal(0, 0.12 * nz, size=img.shape)
    return np.clip(img * 255.0, 0, 255).astype(np.uint8)


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    rr = np.sqrt(u**2 + v**2)
    if shape == "disc":
        m = rr < 1
    elif shape == "square":
        m = (np.abs(u) < 0.8) & (np.abs(v) < 0.8)
    elif shape == "ring":
        m = (rr < 1) & (rr > 0.55)
    elif shape == "cross":
        m = ((np.abs(u) < 0.3) | (np.abs(v) < 0.3)) & (rr < 1.1)
    elif shape == "triangle":
        m = (v > -0.6) & (v < 1.0 - 1.6 * np.abs(u))
    elif shape == "bar":
        m = (np.abs(u) < 1.1) & (np.abs(v) < 0.35)
    elif shape == "diamond":
        m = np.abs(u) + np.abs(v) < 1
    else:  # dots
        m = (np.sin(4 * u) * np.sin(4 * v) > 0.3) & (rr < 1.1)
    return m.astype(np.float32)


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def write_folder(spec: SyntheticSpec, folder: Path) -> Path:
    """Write the set as ``folder/images/<id>.jpg`` (quality 95) and ``folder/labels.csv``
    (path,label,group — the ``csv`` format's manifest); return the CSV's path."""
    from PIL import Image

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    names = class_names(spec.n_classes)
    y = labels(spec)
    rows = ["path,label,group"]
    for start in range(0, spec.n_images, 256):
        idx = np.arange(start, min(start + 256, spec.n_images))
        for i, img in zip(idx, render(spec, idx), strict=True):
            rel = f"images/syn_{spec.seed}_{i:06d}.jpg"
            Image.fromarray(img.transpose(1, 2, 0)).save(folder / rel, quality=95)
            rows.append(f"{rel},{names[y[i]]},{rel}")
    path = folder / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path
