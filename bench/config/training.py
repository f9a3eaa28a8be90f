"""How a network trains: optimiser, learning-rate search, schedule and augmentations (shared
by stages and protocols)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from bench.config.base import KEYED_WHEN_SET, Strict

Precision = Literal["auto", "fp32", "bf16", "fp16"]
"""Arithmetic of forward passes: ``auto`` = bf16 autocast on CUDA, fp32 elsewhere; ``fp32`` = no
autocast anywhere (the reference code); ``bf16`` = bf16 autocast on any device; ``fp16`` = fp16
autocast on CUDA with a loss scaler."""


def precision_field() -> Any:
    """The ``precision`` field of stages and protocols."""
    return Field("auto", description="`auto` (bf16 autocast on CUDA, fp32 on the CPU), `fp32` "
                 "(no autocast: the reference code), `bf16`, or `fp16` (CUDA only, with a loss "
                 "scaler).", json_schema_extra=KEYED_WHEN_SET)


class OptimizerSpec(Strict):
    """Adam with decoupled weight decay (none on biases and normalisation layers)."""

    betas: tuple[float, float] = Field((0.9, 0.99), description="Adam (β1, β2).")
    eps: float = Field(1e-5, gt=0, description="Adam epsilon.")
    weight_decay: float = Field(0.0, ge=0, description="Decoupled weight decay.")


class LRSearchSpec(Strict):
    """How the peak learning rate of the 1cycle schedule is chosen.

    ``fixed`` uses ``lr``; ``lr_finder`` runs fastai's LR finder; ``optuna`` runs a TPE search
    over a log-uniform range, each candidate trained for ``budget_epochs`` on the training part
    minus a stratified validation split (``val_fraction``) and scored by validation accuracy,
    with median pruning — the test part is never used (protocols only: a stage has no labels to
    validate on). ``per: cell`` searches once per cell (the trials share the lr; an optuna
    study seeded by ``seed``), ``per: trial`` searches in every trial (the reference code's
    behaviour; an optuna study seeded by the trial's ``lr_search`` seed source);
    pre-training stages always search once.
    """

    method: Literal["fixed", "lr_finder", "optuna"] = Field(
        "fixed", description="`fixed`, `lr_finder` or `optuna`.")
    per: Literal["cell", "trial"] = Field("cell", description="Search once per cell or trial.")
    lr: float = Field(1e-3, gt=0, description="The max lr with `fixed`.")
    start_lr: float = Field(1e-7, gt=0, description="LR finder: first lr.")
    end_lr: float = Field(10.0, gt=0, description="LR finder: last lr.")
    num_it: int = Field(100, ge=10, description="LR finder: number of iterations.")
    suggestion: Literal["valley", "minimum", "steep"] = Field(
        "valley", description="LR finder: which point of the curve to use."
    )
    low: float = Field(1e-5, gt=0, description="Optuna: lowest lr.")
    high: float = Field(1e-1, gt=0, description="Optuna: highest lr.")
    n_trials: int = Field(12, ge=1, description="Optuna: candidates to try.")
    budget_epochs: int = Field(2, ge=1, description="Optuna: epochs per candidate.")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="Optuna: validation share.")
    pruner: Literal["median", "none"] = Field("median", description="Optuna: pruning rule.")
    storage: Literal["journal", "sqlite"] = Field("journal", description="Optuna storage.")
    seed: int = Field(0, description="Optuna: sampler and validation-split seed.")

    @model_validator(mode="after")
    def _range(self) -> LRSearchSpec:
        if self.low >= self.high:
            raise ValueError("optuna needs low < high")
        return self


class ScheduleSpec(Strict):
    """1cycle (fastai semantics: div 25, peak at 25 %, final lr = max/1e5) or constant."""

    kind: Literal["one_cycle", "constant"] = Field("one_cycle", description="Schedule.")
    pct_start: float = Field(0.25, gt=0, lt=1, description="1cycle: fraction of steps rising.")
    div_factor: float = Field(25.0, gt=0, description="1cycle: start lr = max / div_factor.")
    final_div_factor: float = Field(
        4000.0, gt=0, description="1cycle: final lr = start lr / final_div_factor."
    )
    anneal: Literal["cos", "linear"] = Field(
        "cos", description="1cycle: the shape of both phases (fastai's code: cos; the paper's "
        "prose: linear).", json_schema_extra=KEYED_WHEN_SET)


class AugmentSpec(Strict):
    """The fine-tune train augmentation (the paper: crop 0.7–1, flip 0.25, rotation ±45° 0.25)."""

    crop_scale: tuple[float, float] = Field((0.7, 1.0), description="Random resized crop area.")
    crop_ratio: tuple[float, float] = Field((3 / 4, 4 / 3), description="Crop aspect ratio.")
    flip_p: float = Field(0.25, ge=0, le=1, description="Horizontal flip probability.")
    rotate_p: float = Field(0.25, ge=0, le=1, description="Rotation probability.")
    rotate_deg: float = Field(45.0, ge=0, le=180, description="Max rotation angle (degrees).")
    crop_per_image: bool = Field(
        True, description="One crop per image (false: one per batch, the reference code's "
        "batch transforms; also the TTA passes).", json_schema_extra=KEYED_WHEN_SET)

    @model_validator(mode="after")
    def _ranges(self) -> AugmentSpec:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError("crop_scale must satisfy 0 < low ≤ high ≤ 1")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError("crop_ratio must satisfy 0 < low ≤ high")
        return self


class ViewAugmentSpec(Strict):
    """Probabilities and ranges of one SSL view (defaults: the paper's view 1)."""

    flip_p: float = Field(0.5, ge=0, le=1, description="Horizontal flip probability.")
    jitter_p: float = Field(0.8, ge=0, le=1, description="Colour jitter probability.")
    brightness: float = Field(0.24, ge=0, description="Brightness factor range 1 ± b.")
    contrast: float = Field(0.24, ge=0, description="Contrast factor range 1 ± c.")
    saturation: float = Field(0.12, ge=0, description="Saturation factor range 1 ± s.")
    hue: float = Field(0.06, ge=0, le=0.5, description="Hue shift range ± h (turns).")
    jitter: Literal["fixed", "kornia"] = Field(
        "fixed", description="`fixed`: brightness → contrast → saturation/hue in HSV; `kornia`: "
        "kornia's `ColorJitter` (torchvision's formulas: saturation blended with the grayscale, "
        "a random order of the four steps per batch), as the reference code.",
        json_schema_extra=KEYED_WHEN_SET)
    grayscale_p: float = Field(0.2, ge=0, le=1, description="Grayscale probability.")
    blur_p: float = Field(1.0, ge=0, le=1, description="Gaussian blur probability.")
    blur_sigma: tuple[float, float] = Field((0.1, 2.0), description="Blur σ range.")
    blur_kernel: int = Field(13, ge=3, description="Blur kernel size (odd; clipped to the image).")
    solarize_p: float = Field(0.0, ge=0, le=1, description="Solarize probability.")
    rotate_p: float = Field(0.5, ge=0, le=1, description="Rotation probability.")
    rotate_deg: float = Field(45.0, ge=0, le=180, description="Max rotation angle (degrees).")
    cutout_p: float = Field(0.0, ge=0, le=1, description="Centre dropout probability.")
    cutout_h: tuple[int, int] = Field((50, 100), description="Centre dropout height range (px).")
    cutout_w: tuple[int, int] = Field((185, 190), description="Centre dropout width range (px).")


class SSLAugmentSpec(Strict):
    """The two views of self-supervised pre-training (defaults: the paper's table)."""

    crop_scale: tuple[float, float] = Field((0.7, 1.0), description="Random resized crop area.")
    crop_ratio: tuple[float, float] = Field((3 / 4, 4 / 3), description="Crop aspect ratio.")
    crop_per_image: bool = Field(
        True, description="One crop per image (false: one per batch, as the reference code).")
    view1: ViewAugmentSpec = Field(default_factory=ViewAugmentSpec, description="View 1.")
    view2: ViewAugmentSpec = Field(
        default_factory=lambda: ViewAugmentSpec(blur_p=0.1, solarize_p=0.2), description="View 2.")
