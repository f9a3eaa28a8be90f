"""The paper's suites: the plan's shape, and a smoke run on tiny data and weights made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cli import main
from bench.config.loader import load_suite
from bench.plan import build_plan

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]
TEST_ARCH = "tiny_resnet_w8"


def test_isic2019star_plan_has_the_papers_cells(capsys) -> None:
    assert main(["plan", str(ROOT / "suites" / "isic2019star.yaml")]) == 0
    out = capsys.readouterr().out
    assert "suite isic2019star: 8 stage(s), 20 cell(s), 700 trial(s) (35 seeds per cell)" in out
    plan = build_plan(load_suite(ROOT / "suites" / "isic2019star.yaml", env={}), lenient=True)
    assert sorted({c.name.split("/")[0] for c in plan.cells}) == sorted(
        f"{i}{s}" for i in ("SL", "SSL")
        for s in ("", "+I_SSLp", "+IU_SSLp", "+IUD_SSLp", "+IUD_full"))
    suite = plan.suite
    bt = suite.stages["I_SSLp"]
    assert bt.params["lambda_offdiag"] == 1 / 8192 and bt.params["sparse_head"] == 0.01
    assert bt.unfreeze == "last_block" and suite.stages["IUD_full"].unfreeze == "all"
    assert suite.stages["IUD_SSLp"].repeat == [2, 2, 2, 1]
    assert suite.stages["IUD_SSLp"].views.view1.cutout_p == 0.33
    assert suite.stages["I_SSLp"].views.view1.cutout_p == 0.0
    ft = suite.protocols["fine_tune"]
    assert (ft.batch_size, ft.image_size, ft.epochs, ft.n_warmup) == (64, 256, 40, 1)
    assert (ft.augment.flip_p, ft.augment.rotate_p, ft.tta.passes) == (0.25, 0.25, 3)
    assert suite.seeds.count == 35
    counts = suite.datasets["isic"].split.counts
    assert sum(counts["train"].values()) == 2554 and sum(counts["pretrain_only"].values()) == 1280
    # the paper's contrasts: every init vs its further pre-trained versions, per protocol
    from bench.contrasts import expand_contrasts

    pairs = expand_contrasts(suite.contrasts, [c.name for c in plan.cells])
    further = {(c.a, c.b) for c in pairs if c.family == "further_sl"}
    assert ("SL+IUD_full/linear_probe", "SL/linear_probe") in further and len(further) == 8
    assert len(plan.missing) >= 1  # nothing of the real data is on a test machine


def _jpg(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 20), colour).save(path)


def _tiny_paper_data(tmp: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    rows = ["image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK"]
    meta = ["image,age_approx,anatom_site_general,lesion_id,gender"]
    for c in range(len(CLASSES)):
        for i in range(7):
            iid = f"ISIC_{c}{i:03d}"
            onehot = ["1.0" if k == c else "0.0" for k in range(8)] + ["0.0"]
            rows.append(",".join([iid, *onehot]))
            meta.append(f"{iid},50,torso,IL_{c}{i // 2},female")
            _jpg(tmp / "isic" / f"{iid}.jpg", tuple(int(v) for v in rng.integers(0, 255, 3)))
    (tmp / "gt.csv").write_text("\n".join(rows) + "\n")
    (tmp / "meta.csv").write_text("\n".join(meta) + "\n")
    pad = ["patient_id,lesion_id,img_id,diagnostic"]
    for i in range(6):
        pad.append(f"P{i},{i},PAT_{i}.png,BCC")
        _jpg(tmp / "pad" / f"PAT_{i}.png", (10 * i, 100, 50))
    (tmp / "pad_meta.csv").write_text("\n".join(pad) + "\n")
    for folder in ("train", "test"):
        for cls in ("acne", "eczema"):
            for i in range(3):
                _jpg(tmp / "dermnet" / folder / cls / f"{i}.jpg", (i * 50, 20, 200))
    from bench.models.registry import seeded_backbone

    # weight files in the places the suite names: torchvision's hub cache and BT_WEIGHTS. They
    # hold a tiny ResNet (the test swaps the architecture so that it runs in a minute on a CPU)
    state = seeded_backbone(TEST_ARCH, 0).state_dict()
    hub = tmp / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save({**state, "fc.weight": torch.zeros(1000, 64), "fc.bias": torch.zeros(1000)},
               hub / "resnet50-11ad3fa6.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in
                               seeded_backbone(TEST_ARCH, 1).state_dict().items()}},
               tmp / "bt.pth")
    return {"ISIC2019_IMAGES": str(tmp / "isic"), "ISIC2019_GT": str(tmp / "gt.csv"),
            "ISIC2019_META": str(tmp / "meta.csv"), "PAD_UFES20_IMAGES": str(tmp / "pad"),
            "PAD_UFES20_META": str(tmp / "pad_meta.csv"), "DERMNET_ROOT": str(tmp / "dermnet"),
            "BT_WEIGHTS": str(tmp / "bt.pth"), "TORCH_HOME": str(tmp / "torch"),
            "BENCH_OUTPUT": str(tmp / "runs")}


@pytest.mark.slow
def test_isic2019star_smoke_runs_end_to_end(tmp_path: Path, monkeypatch, capsys) -> None:
    for k, v in _tiny_paper_data(tmp_path).items():
        monkeypatch.setenv(k, v)
    suite = str(ROOT / "suites" / "isic2019star.yaml")
    tiny_split = [  # 7 images per class: 3 train, 1 unlabelled extra, 3 test
        "--set", "datasets.isic.split.counts.train={" + ", ".join(f"{c}: 3" for c in CLASSES) + "}",
        "--set", "datasets.isic.split.counts.pretrain_only={"
        + ", ".join(f"{c}: 1" for c in CLASSES) + "}",
        "--set", "seeds.count=1",
        "--set", f"inits.SL.arch={TEST_ARCH}", "--set", f"inits.SSL.arch={TEST_ARCH}",
    ]
    assert main(["data", "check", suite, "--profile", "smoke", *tiny_split]) == 0
    assert main(["run", suite, "--profile", "smoke", *tiny_split]) == 0
    out = capsys.readouterr().out
    assert "8 stage(s) trained, 0 already done; 20 trial(s) run, 0 already done; 0 failed" in out
    assert (tmp_path / "runs-smoke" / "mlflow.db").exists()
    rep = tmp_path / "rep"
    assert main(["report", suite, "--profile", "smoke", *tiny_split, "--out", str(rep)]) == 0
    assert "## Results: fine_tune" in (rep / "report.md").read_text()
