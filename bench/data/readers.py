"""Format readers: every format becomes one record table.

Columns: ``id`` (unique), ``path`` (absolute image path; empty for synthetic), ``rel`` (path
relative to the root, used in manifests so they do not depend on where the data is mounted),
``label`` (class name), ``group`` (e.g. lesion_id; the id when there is none), ``source`` (the
dataset's name), ``index`` (row number), ``bytes`` (file size, part of the manifest hash), plus
format-specific columns (``folder`` for folder layouts, ``split`` for csv manifests, ``sex``…).

Problems are collected and raised once: missing files, duplicated ids, unknown labels, empty
classes and paths that leave their root are each listed (first 20 and a count).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from bench.config.schema import DatasetSpec
from bench.data import synthetic
from bench.data.errors import DataError, MissingData, offenders

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def _csv(path: Path, where: str, required: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise MissingData(f"{where}: file not found: {path}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)  # LF or CRLF
    except Exception as exc:
        raise DataError(f"{where}: cannot read {path}: {exc}") from exc
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{where}: {path} lacks column(s) {missing}; it has {list(df.columns)}")
    return df


def _files_in(root: Path) -> set[str]:
    try:
        return set(os.listdir(root))
    except FileNotFoundError as exc:
        raise MissingData(f"image folder not found: {root}") from exc


def read_isic2019(spec: DatasetSpec, where: str) -> pd.DataFrame:
    """Official ISIC 2019 ground truth (image + one-hot class columns, float or int) joined with
    the metadata CSV for ``lesion_id`` and sex (``gender`` or ``sex``). UNK is dropped."""
    assert spec.labels and spec.root
    gt = _csv(Path(spec.labels), where, ["image"])
    classes = [c for c in gt.columns if c != "image"]
    try:
        onehot = gt[classes].astype(float).to_numpy()
    except ValueError as exc:
        raise DataError(f"{where}: {spec.labels}: class columns must be numbers: {exc}") from exc
    not_onehot = ~(np.isin(onehot, (0.0, 1.0)).all(1) & (onehot.sum(1) == 1))
    if not_onehot.any():
        raise DataError(offenders("rows that are not one-hot", gt["image"][not_onehot].tolist(),
                                  f"{where}: {spec.labels}"))
    labels = np.array(classes)[onehot.argmax(1)]
    df = pd.DataFrame({"id": gt["image"].str.strip(), "label": labels})
    df = df[df["label"] != "UNK"]
    if spec.drop_downsampled:
        df = df[~df["id"].str.endswith("_downsampled")]
    df["group"] = df["id"]
    if spec.metadata:
        meta = _csv(Path(spec.metadata), where, ["image"])
        sex = "gender" if "gender" in meta.columns else ("sex" if "sex" in meta.columns else None)
        cols = {"image": "id"}
        if sex:
            cols[sex] = "sex"
        if "lesion_id" in meta.columns:
            cols["lesion_id"] = "lesion_id"
        meta = meta[list(cols)].rename(columns=cols)
        df = df.merge(meta, on="id", how="left")
        if "lesion_id" in df.columns:
            has = df["lesion_id"].fillna("").str.len() > 0
            df.loc[has, "group"] = df.loc[has, "lesion_id"]
    df["rel"] = df["id"] + spec.image_ext
    return df


def read_ham10000(spec: DatasetSpec, where: str) -> pd.DataFrame:
    """HAM10000 metadata CSV: ``image_id``, ``dx`` (label), ``lesion_id`` (group)."""
    assert spec.labels
    meta = _csv(Path(spec.labels), where, ["image_id", "dx", "lesion_id"])
    df = pd.DataFrame({"id": meta["image_id"], "label": meta["dx"], "group": meta["lesion_id"]})
    if "sex" in meta.columns:
        df["sex"] = meta["sex"]
    df["rel"] = df["id"] + spec.image_ext
    return df


def read_pad_ufes20(spec: DatasetSpec, where: str) -> pd.DataFrame:
    """PAD-UFES-20 ``metadata.csv``: ``img_id`` (file name), ``diagnostic``, ``patient_id``."""
    assert spec.labels
    meta = _csv(Path(spec.labels), where, ["img_id", "diagnostic"])
    group = meta["lesion_id"] if "lesion_id" in meta.columns else meta.get("patient_id",
                                                                           meta["img_id"])
    df = pd.DataFrame({"id": meta["img_id"], "label": meta["diagnostic"], "group": group})
    df["rel"] = df["id"]
    return df


def read_image_folder(spec: DatasetSpec, where: str, folders: list[str] | None = None
                      ) -> pd.DataFrame:
    """``root/<class>/*.<ext>``, or ``root/<folder>/<class>/*`` for each of ``folders``
    (DermNet's train/ + test/)."""
    assert spec.root
    root = Path(spec.root)
    if not root.is_dir():
        raise MissingData(f"{where}: image folder not found: {root}")
    rows = []
    for folder in folders or [""]:
        base = root / folder
        if not base.is_dir():
            raise MissingData(f"{where}: folder not found: {base}")
        for cls in sorted(p.name for p in base.iterdir() if p.is_dir()):
            for f in sorted((base / cls).iterdir()):
                if f.suffix.lower() in IMAGE_EXTS:
                    rel = f.relative_to(root).as_posix()
                    rows.append({"id": rel, "label": cls, "group": rel, "rel": rel,
                                 "folder": folder})
    if not rows:
        raise DataError(f"{where}: no images ({', '.join(IMAGE_EXTS)}) under {root}")
    return pd.DataFrame(rows)


def read_oral(spec: DatasetSpec, where: str) -> pd.DataFrame:
    """Oral cancer histopathology: ``root/{train,val,test}/{Normal,OSCC}/*.jpg``."""
    return read_image_folder(spec, where, spec.folders or ["train", "val", "test"])


def read_csv_manifest(spec: DatasetSpec, where: str) -> pd.DataFrame:
    """A manifest ``path,label[,group][,split]``; paths are relative to ``root`` (default: the
    manifest's folder) and may not leave it unless ``allow_outside_root``."""
    assert spec.labels
    man_path = Path(spec.labels)
    man = _csv(man_path, where, ["path", "label"])
    root = Path(spec.root) if spec.root else man_path.parent
    escaping = []
    for p in man["path"]:
        pp = Path(p)
        if pp.is_absolute() or ".." in pp.parts:
            escaping.append(p)
    if escaping and not spec.allow_outside_root:
        raise DataError(offenders("paths that leave the root (set allow_outside_root to allow)",
                                  escaping, f"{where}: {man_path}"))
    df = pd.DataFrame({"id": man["path"], "label": man["label"], "rel": man["path"]})
    df["group"] = man["group"] if "group" in man.columns else df["id"]
    if "split" in man.columns:
        df["split"] = man["split"]
    df.attrs["root"] = str(root)
    return df


class Reader(NamedTuple):
    """A dataset format: its reader (spec, 'dataset name' for messages) → records with ``id``,
    ``rel`` (path under the root), ``label`` and ``group``; and the fields it needs."""

    read: Callable[[DatasetSpec, str], pd.DataFrame]
    needs_labels: bool = False
    needs_root: bool = True


READERS: dict[str, Reader] = {
    "isic2019": Reader(read_isic2019, needs_labels=True),
    "ham10000": Reader(read_ham10000, needs_labels=True),
    "pad_ufes20": Reader(read_pad_ufes20, needs_labels=True),
    "image_folder": Reader(lambda spec, where: read_image_folder(spec, where, spec.folders)),
    "oral_histopathology": Reader(read_oral),
    "csv": Reader(read_csv_manifest, needs_labels=True, needs_root=False),
}
"""format → reader (``synthetic`` is generated, not read). A new format: one file with its
read function, one line here — or an installed plugin (entry point ``bench.readers``)."""


def format_problems(spec: DatasetSpec) -> list[tuple[str, str]]:
    """(field, message) for each thing the dataset's format needs and the spec lacks."""
    if spec.format == "synthetic":
        return []
    reader = READERS.get(spec.format)
    if reader is None:
        return [("format", f"unknown format {spec.format!r}")]
    out = []
    if reader.needs_labels and not spec.labels:
        out.append(("labels", f"format {spec.format!r} needs 'labels' (its label/metadata "
                              "file)"))
    if reader.needs_root and not spec.root:
        out.append(("root", f"format {spec.format!r} needs 'root' (the image folder)"))
    return out


def read_records(name: str, spec: DatasetSpec, check_files: bool = True) -> pd.DataFrame:
    """The record table of a dataset (no pixels decoded), validated.

    ``check_files=False`` skips the file-existence check (to read labels on a machine without
    the images).
    """
    where = f"dataset {name!r}"
    if spec.format == "synthetic":
        assert spec.synthetic is not None
        syn = spec.synthetic
        names = synthetic.class_names(syn.n_classes)
        ids = [f"{name}_{syn.seed}_{i:06d}" for i in range(syn.n_images)]
        df = pd.DataFrame({"id": ids, "label": [names[i] for i in synthetic.labels(syn)],
                           "group": ids, "rel": "", "path": "", "bytes": 0})
    else:
        df = READERS[spec.format].read(spec, where)
        root = Path(df.attrs.get("root", spec.root or "."))
        df = df.reset_index(drop=True)
        df["path"] = [str(root / r) for r in df["rel"]]
        if check_files:
            df = _check_files(df, spec, root, where)
        else:
            df["bytes"] = 0
    if spec.class_map:
        df["label"] = df["label"].map(lambda x: spec.class_map.get(x, x))
    if spec.keep_classes is not None:
        absent = sorted(set(spec.keep_classes) - set(df["label"]))
        if absent:
            raise DataError(offenders("classes in keep_classes without any image", absent,
                                      where))
        df = df[df["label"].isin(spec.keep_classes)]
    _validate(df, spec, where)
    if spec.images is not None and len(df) != spec.images and (
            check_files or spec.missing_images == "error"):
        raise DataError(f"{where} holds {len(df)} images and the suite declares "
                        f"{spec.images} (datasets.{name}.images): another version of the data, "
                        "or files missing; put the right files in place, or correct the field")
    df["source"] = name
    df = df.reset_index(drop=True)
    df["index"] = np.arange(len(df))
    return df


def _check_files(df: pd.DataFrame, spec: DatasetSpec, root: Path, where: str) -> pd.DataFrame:
    flat = all("/" not in r for r in df["rel"])
    if flat:
        present = _files_in(root)
        exists = df["rel"].isin(present).to_numpy()
    else:
        exists = np.array([os.path.isfile(p) for p in df["path"]])
    if not exists.all():
        if spec.missing_images == "error":
            raise MissingData(offenders(f"image files missing under {root}",
                                      df["rel"][~exists].tolist(), where))
        df = df[exists].reset_index(drop=True)
        if df.empty:
            raise MissingData(f"{where}: none of the labelled images is under {root}")
    if not spec.allow_outside_root:
        _check_inside(df, root, where)
    df["bytes"] = [os.path.getsize(p) for p in df["path"]]
    return df


def _check_inside(df: pd.DataFrame, root: Path, where: str) -> None:
    """No image may reach outside the root through a symbolic link (a linked folder or file):
    what the suite names as its data would not be what is read."""
    real_root = os.path.realpath(root)
    inside = real_root.rstrip(os.sep) + os.sep
    escaping = [f"{rel} → {real}" for rel, p in zip(df["rel"], df["path"], strict=True)
                if not (real := os.path.realpath(p)).startswith(inside)]
    if escaping:
        raise DataError(offenders(f"images that symbolic links lead outside the root {root} "
                                  "(copy them under it, or set allow_outside_root: true)",
                                  escaping, where))


def _validate(df: pd.DataFrame, spec: DatasetSpec, where: str) -> None:
    dup = df["id"][df["id"].duplicated()].unique().tolist()
    if dup:
        raise DataError(offenders("duplicated ids", dup, where))
    empty_label = df["id"][df["label"].astype(str).str.len() == 0].tolist()
    if empty_label:
        raise DataError(offenders("images without a label", empty_label, where))
    if spec.classes is not None:
        unknown = sorted(set(df["label"]) - set(spec.classes))
        if unknown:
            bad = df[df["label"].isin(unknown)]
            items = [f"{i} ({lab})" for i, lab in zip(bad["id"], bad["label"], strict=True)]
            raise DataError(offenders(f"images with labels outside classes {spec.classes}",
                                      items, where))
        empty = [c for c in spec.classes if c not in set(df["label"])]
        if empty:
            raise DataError(offenders("classes without any image", empty, where))
