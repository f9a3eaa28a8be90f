"""The suite schema: every word of a suite YAML, validated by pydantic v2.

Unknown keys are errors everywhere (``extra="forbid"``). Fields marked ``cosmetic`` (descriptions,
titles) never enter a content key: editing them does not retrain anything (see ``bench.plan``).
Cross-references between sections (a grid naming a protocol, a stage naming a dataset part, …)
are checked in ``bench.config.refs`` so that every error can point at its line.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from bench.config.base import COSMETIC, Strict
from bench.config.names import DATA_REF_RE, NAME_RE
from bench.config.reporting import ContrastSpec, PublishedSpec, ReportSpec
from bench.seeds import SEED_SOURCES


def _description() -> Any:
    return Field(default="", description="Free text; cosmetic.", json_schema_extra=COSMETIC)


DataRef = Annotated[
    str,
    Field(
        pattern=DATA_REF_RE.pattern,
        description="`dataset:part` (one part of a dataset's split) or `dataset` (all of it).",
    ),
]


# --------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------
class SyntheticSpec(Strict):
    """A procedural image set (see ``bench.data.synthetic``): class-dependent colour, shape and
    texture, geometric class imbalance, deterministic by seed."""

    n_classes: int = Field(4, ge=2, le=16, description="Number of classes.")
    n_images: int = Field(400, ge=4, description="Number of images in total.")
    image_size: int = Field(32, ge=8, le=512, description="Side of the square images (px).")
    imbalance: float = Field(
        1.0, gt=0, le=1, description="Size of the rarest class relative to the most frequent."
    )
    noise: float = Field(0.35, ge=0, le=2, description="Pixel noise / nuisance strength.")
    palette: int = Field(
        0, ge=0, description="Which family of class appearances (two sets with another palette "
        "share shapes and textures but not colours: a related but shifted domain)."
    )
    seed: int = Field(0, description="Generator seed.")


class SplitSpec(Strict):
    """A seeded, stratified partition of a dataset into named parts.

    Parts come from a record column (``column``: e.g. a CSV's ``split`` or the folder of an
    ``oral_histopathology`` image), from a draw (``fractions``: part → fraction of each class;
    ``counts``: part → class → number of images; the images left over go to ``rest``), or both:
    with ``column`` and ``within``, the draw splits only that column value's records. ``merge``
    then renames or unites parts (``{test: [val, test]}``).
    """

    seed: int = Field(0, description="Seed of the draw.")
    column: str | None = Field(None, description="Record column holding predefined parts.")
    within: str | None = Field(None, description="With `column`: the part the draw splits.")
    fractions: dict[str, float] | None = Field(None, description="part → fraction of each class.")
    counts: dict[str, dict[str, int]] | None = Field(
        None, description="part → class → exact number of images."
    )
    rest: str | None = Field(None, description="Part that receives what the draw leaves over.")
    grouped: bool = Field(False, description="Keep every group (e.g. lesion_id) on one side.")
    order: Literal["random", "sorted"] = Field(
        "random", description="`sorted`: take images in id order instead of a seeded shuffle."
    )
    rounding: Literal["round", "floor"] = Field(
        "round", description="How fractions of a class size become counts."
    )
    merge: dict[str, list[str]] = Field(
        default_factory=dict, description="new part → existing parts it unites."
    )

    @model_validator(mode="after")
    def _one_rule(self) -> SplitSpec:
        drawn = self.fractions is not None or self.counts is not None
        if self.fractions is not None and self.counts is not None:
            raise ValueError("give 'fractions' or 'counts', not both")
        if not drawn and self.column is None:
            raise ValueError("give 'fractions', 'counts' or 'column'")
        if self.within is not None and self.column is None:
            raise ValueError("'within' needs 'column'")
        if self.fractions is not None:
            bad = [p for p, f in self.fractions.items() if not 0 < f <= 1]
            if bad:
                raise ValueError(f"fractions must lie in (0, 1]; check part(s) {bad}")
            total = sum(self.fractions.values())
            if total > 1 + 1e-6 or (self.rest is None and abs(total - 1.0) > 1e-6):
                raise ValueError(f"fractions sum to {total:g}, not 1"
                                 + ("" if self.rest is None else " or less"))
        names = list(self.fractions or {}) + list(self.counts or {}) + list(self.merge)
        names += [self.rest] if self.rest else []
        for part in names:
            if not NAME_RE.match(part):
                raise ValueError(f"part name {part!r} is not a plain name")
        return self


DATASET_FORMATS = ("synthetic", "isic2019", "ham10000", "pad_ufes20", "image_folder",
                   "oral_histopathology", "csv")


class DatasetSpec(Strict):
    """A named source of images with labels, read by a format reader, and its split.

    Paths are relative to the working directory (use ``${VAR}`` to locate data).
    """

    format: Literal[DATASET_FORMATS] = Field(description="Reader to use.")  # type: ignore[valid-type]
    description: str = _description()
    root: str | None = Field(None, description="Folder of the images.")
    labels: str | None = Field(
        None, description="Label file: ISIC GroundTruth CSV, HAM10000/PAD-UFES-20 metadata, "
        "or the csv manifest (path,label[,group][,split])."
    )
    metadata: str | None = Field(None, description="isic2019: metadata CSV (lesion_id, sex).")
    drop_downsampled: bool = Field(True, description="isic2019: drop ids ending `_downsampled`.")
    missing_images: Literal["error", "drop"] = Field(
        "error", description="A labelled id without an image file: an error, or dropped."
    )
    image_ext: str = Field(".jpg", description="Image file extension where ids have none.")
    folders: list[str] | None = Field(
        None, description="image_folder: sub-folders holding class folders (e.g. [train, test])."
    )
    class_map: dict[str, str] = Field(
        default_factory=dict, description="Rename labels (e.g. HAM10000 dx → ISIC class)."
    )
    classes: list[str] | None = Field(
        None, description="The expected classes; other labels are an error."
    )
    keep_classes: list[str] | None = Field(
        None, description="Keep only images of these classes (e.g. one class for pre-training)."
    )
    allow_outside_root: bool = Field(
        False, description="csv: manifest paths may be absolute or leave the root."
    )
    resize: Literal["crop", "squash"] = Field(
        "crop", description="How images become squares: shorter side + centre crop, or squash."
    )
    synthetic: SyntheticSpec | None = Field(None, description="Generator settings (synthetic).")
    split: SplitSpec = Field(description="How the dataset is partitioned into named parts.")

    @model_validator(mode="after")
    def _format_fields(self) -> DatasetSpec:
        if self.format == "synthetic":
            if self.synthetic is None:
                self.synthetic = SyntheticSpec()
            return self
        if self.synthetic is not None:
            raise ValueError(f"'synthetic' settings do not apply to format {self.format!r}")
        needs_labels = {"isic2019", "ham10000", "pad_ufes20", "csv"}
        if self.format in needs_labels and not self.labels:
            raise ValueError(f"format {self.format!r} needs 'labels' (its label/metadata file)")
        if self.format != "csv" and not self.root:
            raise ValueError(f"format {self.format!r} needs 'root' (the image folder)")
        return self


# --------------------------------------------------------------------------------------------
# inits and stages
# --------------------------------------------------------------------------------------------
class InitSpec(Strict):
    """An architecture and where its starting weights come from."""

    arch: str = Field(description="Encoder architecture (see `bench.models.registry`).")
    weights: str = Field(
        "random",
        description="`random`, `file:PATH` (a state dict) or `torchvision:<Enum>.<NAME>`.",
    )
    seed: int = Field(0, description="Seed of a random initialisation.")
    description: str = _description()

    @field_validator("weights")
    @classmethod
    def _weights_form(cls, v: str) -> str:
        if v == "random" or v.startswith(("file:", "torchvision:")):
            return v
        raise ValueError("weights must be 'random', 'file:PATH' or 'torchvision:<Enum>.<NAME>'")


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
    with median pruning — the test part is never used. ``per: cell`` searches once per cell (the
    trials share the lr), ``per: trial`` searches in every trial (the reference code's
    behaviour); pre-training stages always search once.
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


class AugmentSpec(Strict):
    """The fine-tune train augmentation (the paper: crop 0.7–1, flip 0.25, rotation ±45° 0.25)."""

    crop_scale: tuple[float, float] = Field((0.7, 1.0), description="Random resized crop area.")
    crop_ratio: tuple[float, float] = Field((3 / 4, 4 / 3), description="Crop aspect ratio.")
    flip_p: float = Field(0.25, ge=0, le=1, description="Horizontal flip probability.")
    rotate_p: float = Field(0.25, ge=0, le=1, description="Rotation probability.")
    rotate_deg: float = Field(45.0, ge=0, le=180, description="Max rotation angle (degrees).")

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


class StageSpec(Strict):
    """A pre-training step applied to an encoder (supervised, Barlow Twins, …)."""

    method: str = Field(description="Registered method name, or `package.module:ClassName`.")
    description: str = _description()
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
# evaluation protocols
# --------------------------------------------------------------------------------------------
class TTASpec(Strict):
    """Test-time augmentation: k passes of the train augmentation, softmax averaged, or clean."""

    mode: Literal["augment", "clean"] = Field("augment", description="`augment` or `clean`.")
    passes: int = Field(3, ge=1, description="Passes with `augment`.")


METRICS = ("accuracy", "f1_weighted", "f1_macro", "balanced_accuracy", "auroc_macro")


class ProtocolSpec(Strict):
    """How an encoder is evaluated: fine-tune or linear probe."""

    kind: Literal["fine_tune", "linear_probe"] = Field(description="`fine_tune`|`linear_probe`.")
    description: str = _description()
    train: DataRef = Field(description="Labelled training part.")
    test: DataRef = Field(description="Test part (never used for any choice).")
    epochs: int = Field(ge=1, description="Epochs of 1cycle after the warm-up.")
    warmup_epochs: int | None = Field(
        None, ge=0, description="Head-only epochs first (default 1 for fine_tune, 0 for probe)."
    )
    warmup_lr: float = Field(1e-3, gt=0, description="Constant lr of the warm-up.")
    batch_size: int = Field(64, ge=2, description="Images per batch.")
    image_size: int = Field(256, ge=8, description="Side of the network input (px).")
    normalize: bool = Field(True, description="Apply ImageNet mean/std to inputs.")
    train_bn: bool = Field(False, description="Linear probe: BatchNorm trains (fastai).")
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

    @model_validator(mode="after")
    def _cache_features(self) -> ProtocolSpec:
        if self.cache_features:
            if self.kind != "linear_probe" or self.train_bn:
                raise ValueError("cache_features applies to a linear_probe without train_bn")
            if self.tta.mode != "clean":
                raise ValueError("cache_features trains without augmentation: set tta.mode: "
                                 "clean")
        return self

    @property
    def n_warmup(self) -> int:
        """Warm-up epochs with the protocol's default filled in."""
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        return 1 if self.kind == "fine_tune" else 0


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


class SeedsSpec(Strict):
    """How many trials a cell has and which sources of randomness differ between them."""

    count: int = Field(10, ge=1, description="Trials per cell.")
    base: int = Field(0, description="First trial seed; trials use base, base+1, …")
    vary: list[Literal[SEED_SOURCES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(SEED_SOURCES),
        description="Sources that differ between trials; the others are fixed.",
    )


class SlurmSpec(Strict):
    """How ``bench run --executor slurm`` submits work through submitit (never part of a key).

    Units are packed into array tasks of about ``pack_minutes`` (estimated from finished runs of
    the same cell, else ``trial_minutes``/``stage_minutes``); arrays are split under
    ``max_array_size``; a task that times out or is preempted is requeued and resumes from the
    per-epoch checkpoints.
    """

    cluster: Literal["slurm", "local", "debug"] = Field(
        "slurm", description="submitit executor: slurm, or local/debug to try the path locally."
    )
    partition: str | None = Field(None, description="SLURM partition.")
    account: str | None = Field(None, description="SLURM account.")
    qos: str | None = Field(None, description="SLURM QoS.")
    time_min: int = Field(240, ge=1, description="Walltime of one array task (minutes).")
    pack_minutes: float = Field(
        180.0, gt=0, description="Pack units into a task until this much estimated work."
    )
    trial_minutes: float = Field(10.0, gt=0, description="Estimate for a trial never timed.")
    stage_minutes: float = Field(120.0, gt=0, description="Estimate for a stage never timed.")
    gpus_per_task: int = Field(1, ge=0, description="GPUs per task.")
    cpus_per_task: int = Field(8, ge=1, description="CPU cores per task.")
    mem_gb: float = Field(32.0, gt=0, description="Memory per task (GB).")
    max_array_size: int | None = Field(
        None, ge=1, description="Largest array (default: MaxArraySize from scontrol, else 1000)."
    )
    array_parallelism: int = Field(64, ge=1, description="Array tasks running at once.")
    max_requeues: int = Field(3, ge=0, description="Requeues after timeout or preemption.")
    setup: list[str] = Field(
        default_factory=list, description="Shell lines run before each task (module load, …)."
    )
    additional: dict[str, Any] = Field(
        default_factory=dict, description="Extra sbatch parameters (e.g. constraint: a100)."
    )
    folder: str | None = Field(None, description="submitit logs (default <output>/slurm).")


class Suite(Strict):
    """A whole benchmark suite."""

    name: str = Field(pattern=NAME_RE.pattern, description="Suite name (MLflow experiment).")
    description: str = _description()
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
    published: dict[str, PublishedSpec] = Field(
        default_factory=dict, description="cell name → its published results (mean, sd, n per "
        "metric, and the source), shown beside the measured ones with a replication verdict.")
    slurm: SlurmSpec = Field(default_factory=SlurmSpec, description="SLURM submission settings.")

    @field_validator("datasets", "inits", "stages", "protocols")
    @classmethod
    def _plain_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in v if not NAME_RE.match(k)]
        if bad:
            raise ValueError(
                f"names must start with a letter and use letters, digits, '_' or '-': {bad}"
            )
        return v
