"""Evaluation protocols: one pydantic model per kind, selected by ``kind`` (a discriminated
union built from :data:`PROTOCOL_KINDS`, a plain dict).

Every kind shares :class:`ProtocolBase` (data, schedule, LR search, augmentation, TTA, metrics)
and owns its defaults, its rules and where its runner is (``runner``, a file in
``bench.protocols``). A new kind is a model here with one line in :data:`PROTOCOL_KINDS`, and its
runner file.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, model_validator

from bench.config.base import KEYED_WHEN_SET, DataRef, Strict, description
from bench.config.training import (
    AugmentSpec,
    LRSearchSpec,
    OptimizerSpec,
    Precision,
    ScheduleSpec,
    precision_field,
)


class TTASpec(Strict):
    """Test-time augmentation: k passes of the train augmentation, softmax averaged, or clean."""

    mode: Literal["augment", "clean"] = Field("augment", description="`augment` or `clean`.")
    passes: int = Field(3, ge=1, description="Passes with `augment`.")


METRICS = ("accuracy", "f1_weighted", "f1_macro", "balanced_accuracy", "auroc_macro", "ap_macro")


class ProtocolBase(Strict):
    """What every evaluation protocol shares: the labelled data, the training schedule, the lr
    search, augmentation, TTA and metrics. (``train_bn`` and ``cache_features`` stay here for
    every kind: they were part of every protocol's key before kinds had their own models, so
    keeping them keeps the keys of finished runs.)"""

    kind: str = Field(description="The protocol kind (see `PROTOCOL_KINDS`).")
    description: str = description()
    train: DataRef = Field(description="Labelled training part.")
    test: DataRef = Field(description="Test part (never used for any choice).")
    epochs: int = Field(ge=1, description="Epochs of 1cycle after the warm-up.")
    warmup_epochs: int | None = Field(
        None, ge=0, description="Head-only epochs first (default: 1 for fine_tune, 0 for linear_probe)."
    )
    warmup_lr: float = Field(1e-3, gt=0, description="Constant lr of the warm-up.")
    batch_size: int = Field(64, ge=2, description="Images per batch.")
    image_size: int = Field(256, ge=8, description="Side of the network input (px).")
    normalize: bool = Field(True, description="Apply ImageNet mean/std to inputs.")
    precision: Precision = precision_field()
    drop_last: bool = Field(
        True, description="Drop each epoch's last partial batch (false: train on it too, as "
        "the reference code does).", json_schema_extra=KEYED_WHEN_SET)
    train_bn: bool = Field(
        False, description="BatchNorm layers of the frozen encoder still train (fastai): the "
        "whole linear probe, the warm-up of a fine-tune.")
    cache_features: bool = Field(
        False, description="Linear probe without augmentation: encoder features computed once."
    )
    sampling: Literal["shuffle", "balanced"] = Field(
        "shuffle", description="`balanced`: oversample classes to equal expected frequency."
    )
    lr_search: LRSearchSpec = Field(default_factory=LRSearchSpec, description="Peak lr.")
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec, description="LR schedule.")
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec, description="Optimiser.")
    augment: AugmentSpec = Field(default_factory=AugmentSpec, description="Train augmentation.")
    tta: TTASpec = Field(default_factory=TTASpec, description="Test-time augmentation.")
    metrics: list[Literal[METRICS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["accuracy", "f1_weighted"], description="Metrics to compute."
    )

    runner: ClassVar[str | type] = ""
    """Where the kind's runner is (``module:Class`` under ``bench.protocols``, imported when a
    trial runs; a plugin may give the class itself)."""
    default_warmup: ClassVar[int] = 0
    """Warm-up epochs when ``warmup_epochs`` is not given."""
    trains_encoder: ClassVar[bool] = False
    """Whether the encoder trains after the warm-up (fine-tune) or stays frozen (probe)."""

    @property
    def n_warmup(self) -> int:
        """Warm-up epochs with the kind's default filled in."""
        return self.warmup_epochs if self.warmup_epochs is not None else self.default_warmup


class FineTuneSpec(ProtocolBase):
    """Fine-tuning: a linear head trained alone for the warm-up (default 1 epoch), then the
    whole network with 1cycle."""

    kind: Literal["fine_tune"] = Field(description="`fine_tune`.")
    runner: ClassVar[str | type] = "bench.protocols.fine_tune:FineTune"
    default_warmup: ClassVar[int] = 1
    trains_encoder: ClassVar[bool] = True

    @model_validator(mode="after")
    def _no_cache(self) -> FineTuneSpec:
        if self.cache_features:
            raise ValueError("cache_features applies to a linear_probe without train_bn")
        return self


class LinearProbeSpec(ProtocolBase):
    """Linear probing: a linear head on the frozen encoder (no warm-up by default). Trials that
    differ only in their head are trained together as one HeadBank."""

    kind: Literal["linear_probe"] = Field(description="`linear_probe`.")
    runner: ClassVar[str | type] = "bench.protocols.linear_probe:LinearProbe"

    @model_validator(mode="after")
    def _cache_features(self) -> LinearProbeSpec:
        if self.cache_features:
            if self.train_bn:
                raise ValueError("cache_features applies to a linear_probe without train_bn")
            if self.tta.mode != "clean":
                raise ValueError("cache_features trains without augmentation: set tta.mode: "
                                 "clean")
        return self


PROTOCOL_KINDS: dict[str, type[ProtocolBase]] = {
    "fine_tune": FineTuneSpec,
    "linear_probe": LinearProbeSpec,
}
"""kind → its model (a new kind: its model above, one line here, and its runner file)."""


def protocol_union() -> Any:
    """The discriminated union of every registered kind (what ``Suite.protocols`` holds)."""
    kinds = tuple(PROTOCOL_KINDS.values())
    return Annotated[Union[kinds], Field(discriminator="kind")]  # noqa: UP007


ProtocolSpec = protocol_union()
"""A protocol of any registered kind (annotation); :class:`ProtocolBase` is its common type."""


def parse_protocol(data: dict[str, Any]) -> ProtocolBase:
    """Validate one protocol mapping into the model of its ``kind``."""
    from pydantic import TypeAdapter

    return TypeAdapter(protocol_union()).validate_python(data)
