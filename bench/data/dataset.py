"""A dataset as a record table (id, label, group, source, part) plus a way to get its pixels.

The record table and the split are cheap to build (no pixels), so the plan can hash them;
pixels are produced only when something trains (:meth:`Dataset.images`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from bench.config.schema import DatasetSpec
from bench.data import synthetic
from bench.data.split import assign_parts


@dataclass
class Dataset:
    """Records of one dataset with their split parts.

    Attributes:
        name: the suite's name for the dataset.
        spec: its suite entry.
        records: columns ``id``, ``label`` (class name), ``group``, ``source``, ``part``,
            ``index`` (position in the reader's order, used to fetch pixels).
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
        """Hash of what determines the pixels (the generator settings, or the files)."""
        assert self.spec.synthetic is not None
        return synthetic.spec_digest(self.spec.synthetic)

    def manifest_text(self, part: str | None) -> str:
        """The part's manifest as CSV text (id, label, group, part)."""
        cols = ["id", "label", "group", "part"]
        return self.part(part)[cols].to_csv(index=False, lineterminator="\n")

    def manifest_hash(self, part: str | None) -> str:
        """sha256 of the part's manifest and of the pixel source."""
        key = part or "*"
        if key not in self._hashes:
            h = hashlib.sha256(self.content_digest.encode())
            h.update(self.manifest_text(part).encode())
            self._hashes[key] = h.hexdigest()
        return self._hashes[key]

    def write_manifest(self, part: str | None, folder: Path) -> Path:
        """Write the part's manifest CSV under ``folder``; return its path."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}__{part or 'all'}.csv"
        text = self.manifest_text(part)
        if not path.exists() or path.read_text() != text:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(path)
        return path

    def label_indices(self, rows: pd.DataFrame) -> np.ndarray:
        """(N,) int64 class indices of ``rows``."""
        lookup = {c: i for i, c in enumerate(self.classes)}
        return rows["label"].map(lookup).to_numpy(dtype=np.int64, copy=True)

    def images(self, rows: pd.DataFrame) -> np.ndarray:
        """uint8 (N, 3, S, S) pixels of ``rows`` at the dataset's native size."""
        assert self.spec.synthetic is not None
        return synthetic.render(self.spec.synthetic, rows["index"].to_numpy())


def build_dataset(name: str, spec: DatasetSpec) -> Dataset:
    """Read a dataset's records and draw its split (no pixels are decoded)."""
    assert spec.synthetic is not None
    syn = spec.synthetic
    y = synthetic.labels(syn)
    names = synthetic.class_names(syn.n_classes)
    ids = [f"{name}_{syn.seed}_{i:06d}" for i in range(syn.n_images)]
    records = pd.DataFrame(
        {
            "id": ids,
            "label": [names[i] for i in y],
            "group": ids,
            "source": name,
            "index": np.arange(syn.n_images),
        }
    )
    records["part"] = assign_parts(records, spec.split)
    return Dataset(name=name, spec=spec, records=records, classes=names)
