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

from bench.config.base import COSMETIC, KEYED_WHEN_SET, DataRef, Strict, description
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


METRICS = ("accuracy", "f1_weighted", "f1_macro", "balanced_accuracy", "auroc_macro", "ap_macro",
           "ece", "brier", "nll")
LOWER_IS_BETTER = frozenset({"ece", "brier", "nll"})
"""Metrics where less is better (calibration error and proper scoring losses): for them
A ≻ B means A's value is *lower*; ``alternative: greater`` still tests A's value > B's."""


def a_better_if_above(metric: str) -> bool:
    """Whether a larger value of ``metric`` is the better one."""
    return metric not in LOWER_IS_BETTER


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
    label_fraction: float = Field(
        1.0, gt=0, le=1, description="Train on this share of the labelled training images: a "
        "class-stratified subset drawn by group (patient, lesion) from the trial's `subset` "
        "seed, nested across fractions (usually set through `label_fractions`).",
        json_schema_extra=KEYED_WHEN_SET)
    label_fractions: list[float] | None = Field(
        None, description="Expand into one protocol per fraction, named `<name>@<fraction>` "
        "(e.g. `[0.01, 0.1, 1.0]` → `lp@0.01`, `lp@0.1`, `lp@1`): its own cells, each declared "
        "contrast of this protocol at every fraction (one family: Holm across fractions), and "
        "a label-efficiency figure in the report.", json_schema_extra=COSMETIC)
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
    trains_nothing: ClassVar[bool] = False
    """Whether the kind trains nothing at all (knn): one forward pass of the training part."""

    @model_validator(mode="after")
    def _fractions(self) -> ProtocolBase:
        fr = self.label_fractions
        if fr is not None:
            if not fr or any(not 0 < f <= 1 for f in fr) or len(set(fr)) != len(fr):
                raise ValueError("label_fractions must be distinct values in (0, 1]")
            if self.label_fraction != 1:
                raise ValueError("give label_fractions or label_fraction, not both")
        fractions = fr or [self.label_fraction]
        if min(fractions) < 1 and self.lr_search.method != "fixed":
            raise ValueError("an lr search sees every labelled image of the training part, "
                             "not the subset of a label fraction below 1: use lr_search: "
                             "{method: fixed, lr: …} with label fractions")
        return self

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


KNN_IDLE = ("epochs", "warmup_epochs", "warmup_lr", "lr_search", "schedule", "optimizer",
            "sampling", "drop_last", "train_bn", "cache_features")
"""The settings of every kind that a ``knn`` protocol cannot act on (it trains nothing)."""


class KnnSpec(ProtocolBase):
    """k-nearest neighbours on frozen features: the training part's features are the bank;
    each test image's ``k`` most similar ones vote with weight exp(similarity / τ) (DINO's and
    solo-learn's kNN evaluation). Nothing trains, so the training settings do not apply (and
    are refused); seeds act only through ``bank_augment``."""

    kind: Literal["knn"] = Field(description="`knn`.")
    epochs: int = Field(1, ge=1, description="One pass over the training part builds the "
                        "bank (nothing trains; only 1).")
    tta: TTASpec = Field(default_factory=lambda: TTASpec(mode="clean"),
                         description="Test images are encoded clean (`mode: clean`).")
    k: int = Field(20, ge=1, description="Neighbours that vote (capped at the bank's size).")
    temperature: float = Field(0.07, gt=0, description="τ of the vote weights exp(s / τ) "
                               "(0.07: DINO, solo-learn).")
    l2_normalize: bool = Field(True, description="Cosine similarity (false: the dot product "
                               "of the raw features).")
    bank_augment: bool = Field(
        False, description="Encode the training part through the protocol's `augment`, drawn "
        "from each trial's `augment` seed (the only thing trial seeds can vary here).")
    runner: ClassVar[str | type] = "bench.protocols.knn:Knn"
    trains_nothing: ClassVar[bool] = True

    @model_validator(mode="after")
    def _nothing_trains(self) -> KnnSpec:
        fields = type(self).model_fields
        given = [f for f in KNN_IDLE if f in self.model_fields_set and getattr(self, f)
                 != fields[f].get_default(call_default_factory=True)]
        if given:
            raise ValueError(f"knn trains nothing: {', '.join(given)} cannot act; remove "
                             f"{'it' if len(given) == 1 else 'them'}")
        if self.tta.mode != "clean":
            raise ValueError("knn encodes the test images clean: set tta.mode: clean")
        return self


PROTOCOL_KINDS: dict[str, type[ProtocolBase]] = {
    "fine_tune": FineTuneSpec,
    "linear_probe": LinearProbeSpec,
    "knn": KnnSpec,
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
