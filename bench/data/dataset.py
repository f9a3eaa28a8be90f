"""A dataset as a record table (id, label, group, part, …) plus its split.

The record table and the split are cheap to build (no pixels), so the plan can hash them;
pixels are decoded once, into the decoded cache, when something trains (``bench.data.cache``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from bench.config.schema import DatasetSpec
from bench.data import synthetic
from bench.data.readers import read_records
from bench.data.split import assign_parts

MANIFEST_COLUMNS = ["id", "rel", "label", "group", "part", "bytes"]


@dataclass
class Dataset:
    """Records of one dataset with their split parts.

    Attributes:
        name: the suite's name for the dataset.
        spec: its suite entry.
        records: see ``bench.data.readers``; plus ``part``.
        classes: sorted class names; label indices follow this order.
    """

    name: str
    spec: DatasetSpec
    records: pd.DataFrame
    classes: list[str]
    _hashes: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def parts(self) -> list[str]:
        """Names of the non-empty parts."""
        return sorted(p for p in self.records["part"].unique() if p)

    def part(self, name: str | None) -> pd.DataFrame:
        """Records of one part (``None``: every record)."""
        if name is None:
            return self.records
        return self.records[self.records["part"] == name]

    @cached_property
    def content_digest(self) -> str:
        """Hash of what determines the pixels beyond the manifest (the generator settings)."""
        if self.spec.synthetic is not None:
            return synthetic.spec_digest(self.spec.synthetic)
        return self.spec.format

    def manifest_text(self, part: str | None) -> str:
        """The part's manifest as CSV text (id, rel path, label, group, part, file size)."""
        return self.part(part)[MANIFEST_COLUMNS].to_csv(index=False, lineterminator="\n")

    def manifest_hash(self, part: str | None) -> str:
        """sha256 of the part's manifest and of the pixel source."""
        key = part or "*"
        if key not in self._hashes:
            h = hashlib.sha256(self.content_digest.encode())
            h.update(self.manifest_text(part).encode())
            self._hashes[key] = h.hexdigest()
        return self._hashes[key]

    def write_manifest(self, part: str | None, folder: Path) -> Path:
        """Write the part's manifest CSV under ``folder`` (atomically); return its path."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}__{part or 'all'}.csv"
        text = self.manifest_text(part)
        if not path.exists() or path.read_text() != text:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")  # workers may write it at once
            tmp.write_text(text)
            tmp.replace(path)
        return path

    def label_indices(self, rows: pd.DataFrame) -> np.ndarray:
        """(N,) int64 class indices of ``rows``."""
        lookup = {c: i for i, c in enumerate(self.classes)}
        return rows["label"].map(lookup).to_numpy(dtype=np.int64, copy=True)


def build_dataset(name: str, spec: DatasetSpec, check_files: bool = True) -> Dataset:
    """Read a dataset's records and draw its split (no pixels are decoded)."""
    records = read_records(name, spec, check_files)
    records["part"] = assign_parts(records, spec.split, f"dataset {name!r} split")
    classes = spec.classes or sorted(records["label"].unique())
    if spec.format == "synthetic":
        assert spec.synthetic is not None
        classes = list(dict.fromkeys(spec.class_map.get(c, c)  # renamed, in generator order
                                     for c in synthetic.class_names(spec.synthetic.n_classes)))
    return Dataset(name=name, spec=spec, records=records, classes=classes)
