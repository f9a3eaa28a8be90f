"""The suite schema: every word of a suite YAML, validated by pydantic v2.

Unknown keys are errors everywhere (``extra="forbid"``). Fields marked ``cosmetic`` (descriptions,
titles) never enter a content key: editing them does not retrain anything (see ``bench.plan``).
Cross-references between sections (a grid naming a protocol, a stage naming a dataset part, …)
are checked in ``bench.config.refs`` so that every error can point at its line.
"""

from __future__ import annotations

import itertools
import typing
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bench.config.base import COSMETIC, KEYED_WHEN_SET, DataRef, Strict, description
from bench.config.datasets import DatasetSpec, SplitSpec, SyntheticSpec
from bench.config.names import DATA_REF_RE, NAME_RE
from bench.config.protocols import (
    METRICS,
    PROTOCOL_KINDS,
    ProtocolBase,
    ProtocolSpec,
    TTASpec,
    protocol_union,
)
from bench.config.reporting import ContrastSpec, ControlSpec, PublishedSpec, ReportSpec
from bench.config.slurm import SlurmSpec
from bench.config.training import (
    AugmentSpec,
    LRSearchSpec,
    OptimizerSpec,
    Precision,
    ScheduleSpec,
    SSLAugmentSpec,
    ViewAugmentSpec,
    precision_field,
)
from bench.seeds import SEED_SOURCES

__all__ = [
    "DATA_REF_RE", "METRICS", "NAME_RE", "SEED_SOURCES", "AugmentSpec",
    "CellRef", "ContrastSpec", "DataRef", "DatasetSpec", "GridSpec", "InitSpec", "LRSearchSpec",
    "OptimizerSpec", "ProtocolSpec", "PublishedSpec", "ReportSpec", "SSLAugmentSpec",
    "ScheduleSpec", "SeedsSpec", "SlurmSpec", "SplitSpec", "StageSpec", "Suite", "SyntheticSpec",
    "TTASpec", "ViewAugmentSpec",
]


class InitSpec(Strict):
    """An architecture and where its starting weights come from."""

    arch: str = Field(description="Encoder architecture (see `bench.models.registry`).")
    weights: str = Field(
        "random",
        description="`random`, `file:PATH` (a state dict) or `torchvision:<Enum>.<NAME>`.",
    )
    seed: int = Field(0, description="Seed of a random initialisation.")
    description: str = description()

    @field_validator("weights")
    @classmethod
    def _weights_form(cls, v: str) -> str:
        if v == "random" or v.startswith(("file:", "torchvision:")):
            return v
        raise ValueError("weights must be 'random', 'file:PATH' or 'torchvision:<Enum>.<NAME>'")


class StageSpec(Strict):
    """A pre-training step applied to an encoder (supervised, Barlow Twins, …)."""

    method: str = Field(description="Registered method name, or `package.module:ClassName`.")
    description: str = description()
    data: list[DataRef] = Field(description="Parts whose images are pre-trained on.")
    repeat: list[int] | None = Field(
        None, description="Per-entry repeat factor of `data` (default 1 each)."
    )
    epochs: int = Field(ge=1, description="Epochs after the warm-up.")
    warmup_epochs: int = Field(0, ge=0, description="Epochs with the encoder frozen first.")
    warmup_lr: float = Field(1e-3, gt=0, description="Constant lr of the warm-up.")
    unfreeze: Literal["all", "last_block", "layer4"] = Field(
        "all", description="Which encoder parameters train after the warm-up."
    )
    train_bn: bool = Field(False, description="Frozen BatchNorm layers still train (fastai).")
    batch_size: int = Field(128, ge=2, description="Images per batch (per view).")
    image_size: int = Field(256, ge=8, description="Side of the training crops (px).")
    normalize: bool = Field(True, description="Apply ImageNet mean/std to inputs.")
    precision: Precision = precision_field()
    reset_optimizer: bool = Field(
        True, description="A fresh optimiser when the encoder unfreezes after the warm-up "
        "(false: Adam's state carries over, as the reference code does).",
        json_schema_extra=KEYED_WHEN_SET)
    lr_search: LRSearchSpec = Field(default_factory=LRSearchSpec, description="Peak lr.")
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec, description="LR schedule.")
    optimizer: OptimizerSpec = Field(
        default_factory=lambda: OptimizerSpec(weight_decay=1.5e-6), description="Optimiser."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Method parameters, validated by the method."
    )
    views: SSLAugmentSpec = Field(default_factory=SSLAugmentSpec,
                                  description="SSL view augmentations (two-view methods).")
    augment: AugmentSpec = Field(default_factory=lambda: AugmentSpec(),
                                 description="Single-view augmentation (supervised).")
    seed: int = Field(0, description="Seed of the stage's randomness (replicate 0's).")
    replicates: int = Field(
        1, ge=1, description="Independent pre-training runs, each with its own seed (replicate "
        "r > 0: a seed derived from `seed` and r); every downstream cell is evaluated on each, "
        "and its contrasts test replicate means. 1: one run, and verdicts that compare it say "
        "so.")

    @field_validator("lr_search")
    @classmethod
    def _searchable(cls, v: LRSearchSpec) -> LRSearchSpec:
        if v.method == "optuna":
            raise ValueError("a pre-training stage has no labelled validation split to score "
                             "optuna candidates on: use lr_search.method fixed or lr_finder")
        return v

    @field_validator("data", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _repeat_len(self) -> StageSpec:
        if self.repeat is not None:
            if len(self.repeat) != len(self.data):
                raise ValueError(
                    f"repeat has {len(self.repeat)} entries but data has {len(self.data)}"
                )
            if any(r < 1 for r in self.repeat):
                raise ValueError("repeat factors must be ≥ 1")
        return self


# --------------------------------------------------------------------------------------------
# grid, seeds, contrasts, report
# --------------------------------------------------------------------------------------------
class CellRef(Strict):
    """One explicitly listed cell."""

    init: str = Field(description="Init name.")
    chain: list[str] = Field(default_factory=list, description="Stage names, in order.")
    protocol: str = Field(description="Protocol name.")


class GridSpec(Strict):
    """Cells = inits × chains × protocols, plus `include`, minus `exclude` (glob on cell names)."""

    inits: list[str] = Field(default_factory=list, description="Init names.")
    chains: list[list[str]] = Field(
        default_factory=lambda: [[]], description="Stage chains applied to each init ([] = none)."
    )
    protocols: list[str] = Field(default_factory=list, description="Protocol names.")
    include: list[CellRef] = Field(default_factory=list, description="Extra cells.")
    exclude: list[str] = Field(default_factory=list, description="Glob patterns of cell names.")


class SequentialSpec(Strict):
    """Seeds in waves: after each look every declared contrast is tested against
    group-sequential boundaries, and a cell whose contrasts are all decided gets no more seeds
    (:mod:`bench.analysis.sequential`). Which trials run changes, never what a trial computes:
    no key depends on it."""

    looks: list[int] = Field(description="Seeds per pre-trained encoder at each look, "
                             "increasing; the last is ``seeds.count``.")
    spending: Literal["obrien_fleming", "pocock"] = Field(
        "obrien_fleming", description="Lan–DeMets α-spending function.")
    futility: float | None = Field(
        None, gt=0, lt=1, description="Stop a contrast without a margin when its conditional "
        "power (current trend) falls below this (non-binding: the level is kept); none: never.")

    @field_validator("looks")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if len(v) < 2 or v[0] < 2 or any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError("looks must be at least two increasing seed counts, the first "
                             "at least 2 (e.g. [10, 20, 35])")
        return v


class SeedsSpec(Strict):
    """How many trials a cell has and which sources of randomness differ between them."""

    count: int = Field(10, ge=1, description="Trials per cell.")
    base: int = Field(0, description="First trial seed; trials use base, base+1, …")
    vary: list[Literal[SEED_SOURCES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(SEED_SOURCES),
        description="Sources that differ between trials; the others are fixed.",
    )
    sequential: SequentialSpec | None = Field(
        None, description="Run the seeds in waves and stop a cell once its contrasts are "
        "decided (none: every cell gets ``count`` seeds).")

    @model_validator(mode="after")
    def _last_look(self) -> SeedsSpec:
        if self.sequential is not None and self.sequential.looks[-1] != self.count:
            raise ValueError(f"seeds.sequential.looks must end at seeds.count ({self.count}), "
                             f"not {self.sequential.looks[-1]}")
        return self


class Suite(Strict):
    """A whole benchmark suite."""

    name: str = Field(pattern=NAME_RE.pattern, description="Suite name (MLflow experiment).")
    description: str = description()
    output: str | None = Field(None, description="Output folder (default runs/<name>).")
    tracking_uri: str | None = Field(
        None, description="MLflow URI (default sqlite:///<output>/mlflow.db)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train.")
    allow_leakage: str | None = Field(
        None, description="A reason to run although a test image is also trained on "
        "(recorded as a tag); without it that is an error."
    )
    threads: int | None = Field(None, ge=1, description="CPU threads for torch.")
    compile: bool = Field(
        False, description="torch.compile the training forward passes on CUDA (speed only; "
        "never part of a key).", json_schema_extra=COSMETIC
    )
    datasets: dict[str, DatasetSpec] = Field(description="Named datasets.")
    inits: dict[str, InitSpec] = Field(description="Named initialisations.")
    stages: dict[str, StageSpec] = Field(default_factory=dict, description="Named stages.")
    protocols: dict[str, ProtocolSpec] = Field(description="Named evaluation protocols.")
    grid: GridSpec = Field(description="Which cells to run.")
    seeds: SeedsSpec = Field(default_factory=SeedsSpec, description="Trials per cell.")
    contrasts: list[ContrastSpec] = Field(default_factory=list, description="Comparisons.")
    report: ReportSpec = Field(default_factory=ReportSpec, description="Report settings.")
    controls: list[ControlSpec] = Field(
        default_factory=list, description="Contrasts whose verdict is known in advance (A/A, a "
        "planted effect): the report opens with whether each came out as it must.")
    published: dict[str, PublishedSpec] = Field(
        default_factory=dict, description="cell name → its published results (mean, sd, n per "
        "metric, and the source), shown beside the measured ones with a replication verdict.")
    slurm: SlurmSpec = Field(default_factory=SlurmSpec, description="SLURM submission settings.")

    @model_validator(mode="after")
    def _controls_name_contrasts(self) -> Suite:
        labels = [c.label or f"{c.a} vs {c.b}" for c in self.contrasts if c.a and c.b]
        for i, ctl in enumerate(self.controls):
            if ctl.contrast not in labels:
                raise ValueError(f"controls[{i}].contrast {ctl.contrast!r} names no declared "
                                 f"contrast (those with a and b: {labels})")
            if ctl.metric is not None and ctl.metric not in self.report.metrics:
                raise ValueError(f"controls[{i}].metric {ctl.metric!r} is not one of "
                                 f"report.metrics {self.report.metrics}")
        return self

    @field_validator("datasets", "inits", "stages", "protocols")
    @classmethod
    def _plain_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in v if not NAME_RE.match(k)]
        if bad:
            raise ValueError(
                f"names must start with a letter and use letters, digits, '_' or '-': {bad}"
            )
        return v


def register_protocol(spec: type[ProtocolBase]) -> None:
    """Add a protocol kind while running (a plugin, a test): its model joins
    :data:`~bench.config.protocols.PROTOCOL_KINDS` and the union ``Suite.protocols`` validates.
    bench's own kinds are listed in that dict instead."""
    (kind,) = typing.get_args(spec.model_fields["kind"].annotation)
    PROTOCOL_KINDS[kind] = spec
    Suite.model_fields["protocols"].annotation = dict[str, protocol_union()]
    Suite.model_rebuild(force=True)
