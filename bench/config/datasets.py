"""Datasets: a named source of images read by a format reader, and its seeded split."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bench.config.base import KEYED_WHEN_SET, Strict, description
from bench.config.names import NAME_RE


class SyntheticSpec(Strict):
    """A procedural image set (see ``bench.data.synthetic``): the class sets the factors listed
    in ``label_factors`` (colour, shape, texture, background), the others are random nuisance;
    geometric class imbalance, deterministic by seed."""

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
    label_factors: list[Literal["colour", "shape", "texture", "background"]] = Field(
        default_factory=lambda: list(DEFAULT_FACTORS), min_length=1,
        description="Which factors carry the class: each listed one takes its class's value, "
        "every other is drawn at random per image (a nuisance the labels ignore). E.g. the "
        "demo's source set labelled by `[shape]` and target set by `[colour]`: supervised "
        "source features discard the colour the target needs, by construction.",
        json_schema_extra=KEYED_WHEN_SET)

    @model_validator(mode="after")
    def _distinct_factors(self) -> SyntheticSpec:
        if len(set(self.label_factors)) != len(self.label_factors):
            raise ValueError(f"label_factors lists a factor twice: {self.label_factors}")
        return self


DEFAULT_FACTORS = ("colour", "shape", "texture")
"""The factors that carry the class unless a suite says otherwise (the background is random)."""


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



class DatasetSpec(Strict):
    """A named source of images with labels, read by a format reader, and its split.

    Paths are relative to the working directory (use ``${VAR}`` to locate data).
    """

    format: str = Field(description="Reader to use: `synthetic` or a name of `bench.data.readers`"
                        " (isic2019, ham10000, pad_ufes20, image_folder, oral_histopathology, csv).")
    description: str = description()
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
        False, description="Image paths may leave the root: csv paths that are absolute or "
        "climb out of it, and (any format) symbolic links that point outside it."
    )
    resize: Literal["crop", "squash"] = Field(
        "crop", description="How images become squares: shorter side + centre crop, or squash."
    )
    synthetic: SyntheticSpec | None = Field(None, description="Generator settings (synthetic).")
    split: SplitSpec = Field(description="How the dataset is partitioned into named parts.")
    images: int | None = Field(
        None, ge=1, description="The number of images the dataset holds after the reader's "
        "filters (drop_downsampled, keep_classes): checked when it is read (another number is "
        "an error), and what `bench plan` costs the suite by before the data are in place.")

    def declared_sizes(self) -> dict[str, int] | None:
        """Images per part implied by ``images`` and the split, without reading the data: exact
        for ``counts`` parts and their ``rest``, ≈ for ``fractions`` (each class is rounded on
        its own when the data are read); None when ``images`` is not given or the parts come
        from a record column."""
        split = self.split
        if self.images is None or split.column is not None:
            return None
        sizes = ({p: sum(c.values()) for p, c in split.counts.items()} if split.counts else
                 {p: round(f * self.images) for p, f in (split.fractions or {}).items()})
        if split.rest:
            sizes[split.rest] = self.images - sum(sizes.values())
        for new, old in split.merge.items():
            sizes[new] = sum(sizes.pop(p, 0) for p in old)
        return sizes

    @model_validator(mode="after")
    def _format_fields(self) -> DatasetSpec:
        if self.format == "synthetic":
            if self.synthetic is None:
                self.synthetic = SyntheticSpec()
            return self
        if self.synthetic is not None:
            raise ValueError(f"'synthetic' settings do not apply to format {self.format!r}")
        return self  # what else a format needs is checked against its reader (the plan's resolver)
