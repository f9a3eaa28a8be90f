"""Readers, splits, decoded cache, leakage guard and data CLI on files the tests make."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.config.schema import DatasetSpec, SyntheticSpec
from bench.data.cache import DecodedCache
from bench.data.dataset import build_dataset
from bench.data.errors import DataError
from bench.data.loader import ImageSet, balanced_weights, batches
from bench.data.store import ImageStore
from bench.data.synthetic import write_folder


@pytest.fixture
def synth_dir(tmp_path: Path) -> Path:
    """60 synthetic JPEGs (3 classes) and their labels.csv."""
    write_folder(SyntheticSpec(n_classes=3, n_images=60, image_size=24, seed=1), tmp_path / "s")
    return tmp_path / "s"


def _csv_spec(folder: Path, manifest: str = "labels.csv", **kw) -> DatasetSpec:
    return DatasetSpec.model_validate(dict(format="csv", labels=str(folder / manifest),
                                           split={"fractions": {"train": 0.5, "test": 0.5}},
                                           **kw))


def _rewrite(folder: Path, lines: list[str]) -> None:
    (folder / "bad.csv").write_text("\n".join(lines) + "\n")


def _rows(folder: Path) -> list[str]:
    return (folder / "labels.csv").read_text().splitlines()


def test_csv_manifest_reads(synth_dir: Path) -> None:
    ds = build_dataset("s", _csv_spec(synth_dir))
    assert len(ds.records) == 60 and ds.classes == ["c0", "c1", "c2"]
    assert (ds.records["bytes"] > 0).all()


def test_missing_files_are_listed_with_a_count(synth_dir: Path) -> None:
    rows = _rows(synth_dir) + [f"images/gone_{i}.jpg,c0" for i in range(25)]
    _rewrite(synth_dir, [r.rsplit(",", 1)[0] if r.count(",") == 2 else r for r in rows])
    with pytest.raises(DataError, match=r"25 image files missing under .*: images/gone_0\.jpg, "
                                        r"images/gone_1\.jpg.* … and 5 more"):
        build_dataset("s", _csv_spec(synth_dir, "bad.csv"))
    ds = build_dataset("s", _csv_spec(synth_dir, "bad.csv", missing_images="drop"))
    assert len(ds.records) == 60


def test_duplicated_ids(synth_dir: Path) -> None:
    rows = _rows(synth_dir)
    _rewrite(synth_dir, [*rows, rows[1], rows[2]])
    with pytest.raises(DataError, match=r"dataset 's': 2 duplicated ids: images/syn_1_000000"):
        build_dataset("s", _csv_spec(synth_dir, "bad.csv"))


def test_unknown_labels_and_empty_classes(synth_dir: Path) -> None:
    with pytest.raises(DataError, match=r"images with labels outside classes \['c0', 'c1'\]: "
                                        r"images/syn_1_\d+\.jpg \(c2\)"):
        build_dataset("s", _csv_spec(synth_dir, classes=["c0", "c1"]))
    with pytest.raises(DataError, match=r"1 classes without any image: c9"):
        build_dataset("s", _csv_spec(synth_dir, classes=["c0", "c1", "c2", "c9"]))


def test_paths_may_not_leave_the_root(synth_dir: Path) -> None:
    _rewrite(synth_dir, ["path,label", "../escape.jpg,c0", "/etc/passwd,c1"])
    with pytest.raises(DataError, match=r"2 paths that leave the root .*: \.\./escape\.jpg, "
                                        r"/etc/passwd"):
        build_dataset("s", _csv_spec(synth_dir, "bad.csv"))


def test_corrupt_image_is_named(synth_dir: Path, tmp_path: Path) -> None:
    (synth_dir / "images" / "syn_1_000003.jpg").write_bytes(b"not a jpeg")
    ds = build_dataset("s", _csv_spec(synth_dir))
    cache = DecodedCache(tmp_path / "cache", workers=1)
    part = "train" if "images/syn_1_000003.jpg" in set(ds.part("train")["id"]) else "test"
    with pytest.raises(DataError, match=r"1 images that cannot be decoded: .*syn_1_000003\.jpg"):
        cache.get(ds, part, 16)
    assert not list((tmp_path / "cache").glob("*.json"))  # nothing half-built is left


def test_split_errors(synth_dir: Path) -> None:
    base = dict(format="csv", labels=str(synth_dir / "labels.csv"))
    with pytest.raises(DataError, match=r"classes too small for the split: c0 has \d+ images, "
                                        r"counts ask for 500"):
        build_dataset("s", DatasetSpec.model_validate(
            {**base, "split": {"counts": {"train": {"c0": 500}}, "rest": "test"}}))
    with pytest.raises(DataError, match=r"classes in counts that the data lacks: c7"):
        build_dataset("s", DatasetSpec.model_validate(
            {**base, "split": {"counts": {"train": {"c7": 1}}, "rest": "test"}}))
    with pytest.raises(DataError, match=r"the records have no column 'fold'"):
        build_dataset("s", DatasetSpec.model_validate({**base, "split": {"column": "fold"}}))


def test_counts_sorted_floor_column_within_and_merge(synth_dir: Path) -> None:
    rows = _rows(synth_dir)
    out = ["path,label,group,split"] + [f"{r},{'val' if i % 5 == 0 else 'train'}"
                                       for i, r in enumerate(rows[1:])]
    _rewrite(synth_dir, out)
    spec = _csv_spec(synth_dir, "bad.csv").model_copy(update={"split": None})
    spec = DatasetSpec.model_validate({**spec.model_dump(), "split": {
        "column": "split", "within": "train", "fractions": {"ft": 0.1}, "rest": "pool",
        "order": "sorted", "rounding": "floor", "merge": {"test": ["val"]}}})
    ds = build_dataset("s", spec)
    assert set(ds.parts) == {"ft", "pool", "test"}
    for cls, rows_c in ds.records[ds.records["split"] == "train"].groupby("label"):
        ft = ds.part("ft")[ds.part("ft")["label"] == cls]
        assert len(ft) == int(np.floor(0.1 * len(rows_c)))
        assert list(ft["id"]) == sorted(rows_c["id"])[: len(ft)]  # the first of the sorted class


def test_grouped_split_keeps_groups_together(synth_dir: Path) -> None:
    rows = _rows(synth_dir)
    grouped = [rows[0]] + [f"{r.rsplit(',', 1)[0]},g{i // 3}" for i, r in enumerate(rows[1:])]
    _rewrite(synth_dir, grouped)
    spec = DatasetSpec.model_validate(dict(format="csv", labels=str(synth_dir / "bad.csv"),
                                           split={"fractions": {"a": 0.5, "b": 0.5},
                                                  "grouped": True, "seed": 4}))
    ds = build_dataset("s", spec)
    assert not set(ds.part("a")["group"]) & set(ds.part("b")["group"])


def test_image_folder_with_sub_folders(tmp_path: Path) -> None:
    from PIL import Image

    for folder in ("train", "test"):
        for cls in ("acne", "eczema"):
            d = tmp_path / "dn" / folder / cls
            d.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (20, 10), (i * 40, 0, 0)).save(d / f"{i}.jpg")
    spec = DatasetSpec.model_validate(dict(format="image_folder", root=str(tmp_path / "dn"),
                                           folders=["train", "test"],
                                           split={"fractions": {"all": 1.0}}))
    ds = build_dataset("dn", spec)
    assert len(ds.records) == 12 and set(ds.records["folder"]) == {"train", "test"}
    assert ds.classes == ["acne", "eczema"]


def test_decoded_cache_is_built_once_and_keyed(synth_dir: Path, tmp_path: Path) -> None:
    ds = build_dataset("s", _csv_spec(synth_dir))
    cache = DecodedCache(tmp_path / "cache", workers=1)
    a = cache.get(ds, "train", 16)
    assert a.images.shape == (30, 3, 16, 16) and a.images.dtype == np.uint8
    entry = tmp_path / "cache" / f"{cache.key(ds, 'train', 16)}.u8"
    mtime = entry.stat().st_mtime_ns
    b = cache.get(ds, "train", 16)
    assert entry.stat().st_mtime_ns == mtime and np.array_equal(a.images, b.images)
    assert cache.key(ds, "train", 16) != cache.key(ds, "train", 20)
    squash = build_dataset("s", _csv_spec(synth_dir, resize="squash"))
    assert cache.key(squash, "train", 16) != cache.key(ds, "train", 16)
    assert a.pixel_hashes[0] == cache.get(ds, "train", 20).pixel_hashes[0]  # native pixels


def test_crop_and_squash() -> None:
    from PIL import Image

    from bench.data.cache import to_square

    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white left quarter
    crop, squash = to_square(img, 10, "crop"), to_square(img, 10, "squash")
    assert crop.shape == squash.shape == (3, 10, 10)
    assert crop[0, 5, 0] < 40  # the centre crop loses the white border
    assert squash[0, 5, 0] > 200  # squashing keeps it


def test_store_union_repeats_and_balanced_sampling(synth_dir: Path, tmp_path: Path) -> None:
    ds = build_dataset("s", _csv_spec(synth_dir))
    store = ImageStore({"s": ds}, tmp_path / "cache")
    u = store.union(["s:train", "s:test"], [2, 1], 16, labelled=False)
    assert len(u) == 30 * 2 + 30 and u.labels is None and u.images.shape[0] == 60
    got = torch.cat([x for x, _ in batches(u, 8, torch.device("cpu"),
                                           torch.Generator().manual_seed(0), drop_last=False)])
    assert got.shape[0] == 90
    labels = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)
    data = ImageSet(torch.zeros(100, 3, 2, 2, dtype=torch.uint8), labels)
    g = torch.Generator().manual_seed(0)
    drawn = torch.cat([y for _ in range(50) for _, y in batches(
        data, 10, torch.device("cpu"), g, True, balanced_weights(data))])
    freq = torch.bincount(drawn, minlength=3).float() / len(drawn)
    assert torch.allclose(freq, torch.full((3,), 1 / 3), atol=0.03)


LEAK_SUITE = """\
name: leak
output: {out}
datasets:
  s:
    format: csv
    labels: {labels}
    split: {{seed: 0, fractions: {{train: 0.5, test: 0.5}}}}
  extra:
    format: image_folder
    root: {extra}
    split: {{fractions: {{all: 1.0}}}}
inits:
  r: {{arch: tiny_resnet_w8}}
stages:
  bt: {{method: barlow_twins, data: [{stage_data}], epochs: 1, batch_size: 8, image_size: 16,
        params: {{projector: {{dims: [16, 16]}}}}}}
protocols:
  lp: {{kind: linear_probe, train: s:train, test: s:test, epochs: 1, batch_size: 8,
        image_size: 16}}
grid: {{inits: [r], chains: [[bt]], protocols: [lp]}}
seeds: {{count: 1}}
"""


def _leak_suite(tmp_path: Path, synth_dir: Path, stage_data: str, copy: bool) -> Path:
    import shutil

    from bench.plan import build_plan, load_suite

    extra = tmp_path / "extra" / "cls"
    extra.mkdir(parents=True, exist_ok=True)
    shutil.copy(synth_dir / "images" / "syn_1_000059.jpg", extra / "unrelated.jpg")
    if copy:  # copy a test image under another name
        plan = build_plan(load_suite(_write(tmp_path, synth_dir, "extra:all"), env={}))
        test_id = plan.datasets["s"].part("test")["id"].iloc[0]
        shutil.copy(synth_dir / test_id, extra / "innocent_name.jpg")
    return _write(tmp_path, synth_dir, stage_data)


def _write(tmp_path: Path, synth_dir: Path, stage_data: str) -> Path:
    path = tmp_path / "leak.yaml"
    path.write_text(LEAK_SUITE.format(out=tmp_path / "out", labels=synth_dir / "labels.csv",
                                      extra=tmp_path / "extra", stage_data=stage_data))
    return path


def test_data_check_cli_and_leakage(synth_dir: Path, tmp_path: Path, capsys) -> None:
    clean = _leak_suite(tmp_path, synth_dir, "extra:all", copy=False)
    assert main(["data", "check", str(clean)]) == 0
    out = capsys.readouterr().out
    assert "leakage: no test image is trained on" in out and "manifest s:train  sha256" in out
    # the stage pre-trains on all of 's': the test ids are trained on
    assert main(["data", "check", str(_write(tmp_path, synth_dir, "s"))]) == 2
    assert "30 images in both (same id)" in capsys.readouterr().out
    # a test picture copied under another name into the pre-training folder
    copied = _leak_suite(tmp_path, synth_dir, "extra:all", copy=True)
    assert main(["data", "check", str(copied)]) == 2
    assert "identical pictures (same decoded pixels)" in capsys.readouterr().out
    # bench run refuses before training anything, and says how to proceed
    assert main(["run", str(copied)]) == 2
    err = capsys.readouterr().err
    assert "leakage guard: a test image is also trained on" in err and "allow_leakage" in err
    # allowed with a reason: a warning, the run goes on and the reason is recorded
    assert main(["run", str(copied), "--set", "allow_leakage=pilot run on purpose"]) == 0
    assert "warning: allowed (pilot run on purpose)" in capsys.readouterr().out
    # a missing file is a clean error naming it
    (synth_dir / "images" / "syn_1_000000.jpg").unlink()
    assert main(["data", "check", str(clean)]) == 2
    assert "1 image files missing" in capsys.readouterr().out


def test_data_synth_cli(tmp_path: Path, capsys) -> None:
    assert main(["data", "synth", str(tmp_path / "d"), "--images", "12", "--size", "16"]) == 0
    assert len(list((tmp_path / "d" / "images").glob("*.jpg"))) == 12
    assert len((tmp_path / "d" / "labels.csv").read_text().splitlines()) == 13


def _jpgs(folder: Path, names: list[str]) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        Image.new("RGB", (12, 12), (i * 20 % 255, 10, 10)).save(folder / n)


def test_isic2019_format_details(tmp_path: Path) -> None:
    _jpgs(tmp_path / "img", ["ISIC_1.jpg", "ISIC_2.jpg", "ISIC_3_downsampled.jpg"])
    gt = ("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\r\n"  # CRLF, int and float one-hot
          "ISIC_1,1,0,0,0,0,0,0,0,0\r\nISIC_2,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\r\n"
          "ISIC_3_downsampled,0,1,0,0,0,0,0,0,0\r\n")
    (tmp_path / "gt.csv").write_text(gt)
    (tmp_path / "meta.csv").write_text("image,age_approx,lesion_id,sex\nISIC_1,50,IL_9,male\n"
                                       "ISIC_2,40,,female\n")
    spec = dict(format="isic2019", root=str(tmp_path / "img"), labels=str(tmp_path / "gt.csv"),
                metadata=str(tmp_path / "meta.csv"), split={"fractions": {"all": 1.0}})
    ds = build_dataset("i", DatasetSpec.model_validate(spec))
    assert ds.records["id"].tolist() == ["ISIC_1", "ISIC_2"]
    assert ds.records["label"].tolist() == ["MEL", "NV"]
    assert ds.records["group"].tolist() == ["IL_9", "ISIC_2"]  # lesion_id, else the id
    assert ds.records["sex"].tolist() == ["male", "female"]
    keep = build_dataset("i", DatasetSpec.model_validate({**spec, "drop_downsampled": False}))
    assert len(keep.records) == 3
    (tmp_path / "gt.csv").write_text(gt.replace("ISIC_2,0.0,1.0", "ISIC_2,1.0,1.0"))
    with pytest.raises(DataError, match=r"1 rows that are not one-hot: ISIC_2"):
        build_dataset("i", DatasetSpec.model_validate(spec))
    (tmp_path / "gt.csv").write_text("img,MEL\nISIC_1,1\n")
    with pytest.raises(DataError, match=r"gt\.csv lacks column\(s\) \['image'\]"):
        build_dataset("i", DatasetSpec.model_validate(spec))
    with pytest.raises(DataError, match="file not found"):
        build_dataset("i", DatasetSpec.model_validate({**spec, "labels": str(tmp_path / "x")}))


def test_pad_ufes20_and_oral_formats(tmp_path: Path) -> None:
    _jpgs(tmp_path / "pad", ["PAT_1_1.png", "PAT_1_2.png", "PAT_2_3.png"])
    (tmp_path / "metadata.csv").write_text(
        "patient_id,lesion_id,img_id,diagnostic\nPAT_1,1,PAT_1_1.png,BCC\n"
        "PAT_1,1,PAT_1_2.png,BCC\nPAT_2,3,PAT_2_3.png,NEV\n")
    pad = build_dataset("pad", DatasetSpec.model_validate(dict(
        format="pad_ufes20", root=str(tmp_path / "pad"), labels=str(tmp_path / "metadata.csv"),
        split={"fractions": {"all": 1.0}})))
    assert pad.records["label"].tolist() == ["BCC", "BCC", "NEV"]
    assert pad.records["group"].tolist() == ["1", "1", "3"]
    for folder in ("train", "val", "test"):
        for cls in ("Normal", "OSCC"):
            _jpgs(tmp_path / "oral" / folder / cls, [f"{folder}_{cls}_{i}.jpg" for i in range(4)])
    oral = build_dataset("oral", DatasetSpec.model_validate(dict(
        format="oral_histopathology", root=str(tmp_path / "oral"),
        split={"column": "folder", "within": "train", "fractions": {"finetune": 0.25},
               "rest": "pretrain_pool", "order": "sorted", "merge": {"test": ["val", "test"]}})))
    assert len(oral.part("finetune")) == 2 and len(oral.part("test")) == 16
    assert sorted(oral.part("finetune")["id"]) == ["train/Normal/train_Normal_0.jpg",
                                                    "train/OSCC/train_OSCC_0.jpg"]
    with pytest.raises(DataError, match="folder not found"):
        build_dataset("oral", DatasetSpec.model_validate(dict(
            format="image_folder", root=str(tmp_path / "oral"), folders=["nope"],
            split={"fractions": {"all": 1.0}})))


def _centroid_accuracy(features: np.ndarray, y: np.ndarray) -> float:
    """Nearest class centroid, fitted on the even images and scored on the odd ones."""
    fit, score = slice(0, None, 2), slice(1, None, 2)
    classes = np.unique(y)
    centroids = np.stack([features[fit][y[fit] == c].mean(0) for c in classes])
    guess = classes[((features[score][:, None] - centroids[None]) ** 2).sum(-1).argmin(1)]
    return float((guess == y[score]).mean())


@pytest.mark.parametrize("factors", [["colour"], ["shape", "texture"], ["background"]])
def test_label_factors_decide_what_carries_the_class(factors: list[str]) -> None:
    """A factor in ``label_factors`` shows the class; every other one is drawn independently of
    it. Colour and background are read off two pixel summaries: the object's mean colour (the
    centre) and the background's (the corners)."""
    from bench.data.synthetic import FACTORS, factor_values, labels, render

    spec = SyntheticSpec(n_classes=4, n_images=400, image_size=16, noise=0.2, seed=1,
                         label_factors=factors)
    y = labels(spec)
    values = [factor_values(spec, i, int(y[i])) for i in range(spec.n_images)]
    for f in FACTORS:
        agree = np.mean([v[f] == y[i] for i, v in enumerate(values)])
        assert agree == 1.0 if f in factors else abs(agree - 0.25) < 0.08, (f, agree)
    x = render(spec).astype(np.float32) / 255
    centre = x[:, :, 6:10, 6:10].mean((2, 3))
    corners = np.concatenate([x[:, :, :2, :2], x[:, :, -2:, -2:]], 2).mean((2, 3))
    object_acc, background_acc = _centroid_accuracy(centre, y), _centroid_accuracy(corners, y)
    assert (object_acc > 0.8) == ("colour" in factors), object_acc
    assert (background_acc > 0.8) == ("background" in factors), background_acc
    assert object_acc < 0.5 or "colour" in factors
    assert background_acc < 0.5 or "background" in factors


def test_default_label_factors_keep_every_older_set_as_it_was() -> None:
    from bench.data.synthetic import spec_digest

    spec = SyntheticSpec(seed=4)
    assert spec.label_factors == ["colour", "shape", "texture"]
    assert spec_digest(spec) == spec_digest(SyntheticSpec.model_validate(
        {k: v for k, v in spec.model_dump().items() if k != "label_factors"}))
    assert spec_digest(spec) != spec_digest(SyntheticSpec(seed=4, label_factors=["colour"]))
    with pytest.raises(ValueError, match="lists a factor twice"):
        SyntheticSpec(label_factors=["shape", "shape"])
