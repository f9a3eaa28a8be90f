"""Readers and splits on the real data (ISIC 2019 ground truth, HAM10000 images).

Skipped with a reason when ``BENCH_SHARED_DATA`` does not name the data folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from bench.config.schema import DatasetSpec
from bench.data.dataset import build_dataset
from bench.data.readers import read_records

ISIC_TRAIN = {"AK": 306, "BCC": 500, "BKL": 467, "DF": 55, "MEL": 500, "NV": 500, "SCC": 171,
              "VASC": 55}
ISIC_EXTRA = {"AK": 63, "BCC": 274, "BKL": 110, "DF": 11, "MEL": 309, "NV": 458, "SCC": 43,
              "VASC": 12}
ISIC_TEST = {"AK": 498, "BCC": 2549, "BKL": 1663, "DF": 173, "MEL": 3339, "NV": 10601,
             "SCC": 414, "VASC": 186}
HAM_TO_ISIC = {"nv": "NV", "mel": "MEL", "bkl": "BKL", "bcc": "BCC", "vasc": "VASC", "df": "DF"}


def _isic(data: Path, **kw) -> DatasetSpec:
    base = dict(format="isic2019", root=str(data / "ham10000" / "images"),
                labels=str(data / "isic2019" / "ISIC_2019_Training_GroundTruth.csv"),
                metadata=str(data / "isic2019" / "ISIC_2019_Training_Metadata.csv"),
                split={"fractions": {"all": 1.0}})
    base.update(kw)
    return DatasetSpec.model_validate(base)


def test_isic2019_ground_truth_rows(shared_data: Path) -> None:
    raw = read_records("isic", _isic(shared_data, drop_downsampled=False), check_files=False)
    assert len(raw) == 25331
    rec = read_records("isic", _isic(shared_data), check_files=False)
    assert len(rec) == 23257
    assert not rec["id"].str.endswith("_downsampled").any()
    assert set(rec["label"]) == set(ISIC_TRAIN)  # UNK dropped
    assert "sex" in rec.columns
    assert (rec["group"] != rec["id"]).sum() > 10000  # lesion_id joined from the metadata


def test_isic2019_star_split_counts_exactly(shared_data: Path) -> None:
    spec = _isic(shared_data, split={"seed": 0, "counts": {"train": ISIC_TRAIN,
                                                           "pretrain_only": ISIC_EXTRA},
                                     "rest": "test"})
    ds = build_dataset("isic", spec, check_files=False)
    counts = ds.records.groupby(["part", "label"]).size()
    for part, expected in (("train", ISIC_TRAIN), ("pretrain_only", ISIC_EXTRA),
                           ("test", ISIC_TEST)):
        assert counts[part].to_dict() == expected, part
    assert (len(ds.part("train")), len(ds.part("pretrain_only")), len(ds.part("test"))) == \
        (2554, 1280, 19423)
    # seeded: the same seed draws the same images, another seed other images
    again = build_dataset("isic", spec, check_files=False)
    assert again.manifest_hash("train") == ds.manifest_hash("train")
    other = build_dataset("isic", spec.model_copy(update={"split": spec.split.model_copy(
        update={"seed": 1})}), check_files=False)
    assert other.manifest_hash("train") != ds.manifest_hash("train")


def test_the_shipped_suites_declare_what_the_real_files_hold(shared_data: Path) -> None:
    """The `images` the paper suites declare equal what bench's readers count on the official
    files: ISIC 2019's ground truth and metadata (images not needed), HAM10000 with its images."""
    from bench.plan import load_suite

    root = Path(__file__).resolve().parents[1] / "suites"
    isic = load_suite(root / "isic2019star.yaml", env={
        "ISIC2019_GT": str(shared_data / "isic2019" / "ISIC_2019_Training_GroundTruth.csv"),
        "ISIC2019_META": str(shared_data / "isic2019" / "ISIC_2019_Training_Metadata.csv"),
    }).suite.datasets["isic"]
    ds = build_dataset("isic", isic, check_files=False)
    assert len(ds.records) == isic.images == 23257
    assert {p: len(ds.part(p)) for p in ("train", "pretrain_only", "test")} == \
        isic.declared_sizes()
    ham = load_suite(root / "ham10000.yaml", env={"HAM10000_DIR": str(shared_data / "ham10000")}
                     ).suite.datasets["ham"]
    assert len(build_dataset("ham", ham).records) == ham.images == 10015


def test_isic2019_reader_on_ham10000_images(shared_data: Path) -> None:
    rec = read_records("isic", _isic(shared_data, missing_images="drop"))
    assert len(rec) == 10015
    ham = pd.read_csv(shared_data / "ham10000" / "HAM10000_metadata.csv")
    merged = rec.merge(ham, left_on="id", right_on="image_id")
    assert len(merged) == 10015
    for dx, label in zip(merged["dx"], merged["label"], strict=True):
        assert label == HAM_TO_ISIC.get(dx, label) and (dx != "akiec" or label in ("AK", "SCC"))
    assert (rec["bytes"] > 0).all()


def test_ham10000_lesion_grouped_split(shared_data: Path) -> None:
    spec = DatasetSpec.model_validate(dict(
        format="ham10000", root=str(shared_data / "ham10000" / "images"),
        labels=str(shared_data / "ham10000" / "HAM10000_metadata.csv"),
        split={"seed": 3, "fractions": {"train": 0.6, "test": 0.4}, "grouped": True}))
    ds = build_dataset("ham", spec)
    assert len(ds.records) == 10015 and ds.records["group"].nunique() == 7470
    train, test = set(ds.part("train")["group"]), set(ds.part("test")["group"])
    assert train and test and not train & test
    assert abs(len(ds.part("train")) / 10015 - 0.6) < 0.02


def test_leakage_guard_on_real_images(shared_data: Path, tmp_path: Path) -> None:
    from bench.data.check import check_data
    from bench.data.store import ImageStore
    from bench.plan import build_plan, load_suite

    images = shared_data / "ham10000" / "images"
    names = sorted(p.name for p in images.iterdir())[:60]
    (tmp_path / "test.csv").write_text("path,label,split\n" + "".join(
        f"{n},{'a' if i % 2 else 'b'},{'test' if i < 30 else 'train'}\n"
        for i, n in enumerate(names)))
    pre = tmp_path / "pre" / "x"
    pre.mkdir(parents=True)
    shutil.copy(images / names[7], pre / "renamed_copy.jpg")  # a test image, another name
    for n in sorted(p.name for p in images.iterdir())[100:110]:
        shutil.copy(images / n, pre / n)
    suite = tmp_path / "leak.yaml"
    suite.write_text(f"""\
name: leak
output: {tmp_path / 'out'}
datasets:
  ham:
    format: csv
    root: {images}
    labels: {tmp_path / 'test.csv'}
    split: {{column: split}}
  pre:
    format: image_folder
    root: {tmp_path / 'pre'}
    split: {{fractions: {{all: 1.0}}}}
inits:
  r: {{arch: tiny_resnet_w8}}
stages:
  bt: {{method: barlow_twins, data: [pre:all, ham], epochs: 1, image_size: 16}}
protocols:
  lp: {{kind: linear_probe, train: ham:train, test: ham:test, epochs: 1, image_size: 16}}
grid: {{inits: [r], chains: [[bt]], protocols: [lp]}}
""")
    plan = build_plan(load_suite(suite, env={}))
    text, report = check_data(plan, ImageStore(plan.datasets, tmp_path / "cache"))
    joined = "\n".join(report.errors)
    assert "test ham:test vs training ham: 30 images in both (same id)" in joined
    assert f"test ham:test vs training pre:all: 1 identical pictures (same decoded pixels): " \
        f"{names[7]} = x/renamed_copy.jpg" in joined
    assert "leakage: 2 problem(s)" in text
