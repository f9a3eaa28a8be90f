"""The paper's suites: the plan's shape, and a smoke run on tiny data and weights made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cli import main
from bench.plan import build_plan, load_suite

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]
TEST_ARCH = "tiny_resnet_w8"


def test_isic2019star_plan_has_the_papers_cells(capsys) -> None:
    assert main(["plan", str(ROOT / "suites" / "isic2019star.yaml"), "--allow-missing"]) == 0
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
        # the tiny data's sizes (the suite declares the real ones, and they are checked)
        "--set", f"datasets.isic.images={7 * len(CLASSES)}", "--set", "datasets.pad.images=6",
        "--set", "datasets.dermnet.images=12",
    ]
    assert main(["data", "check", suite, "--profile", "smoke", *tiny_split]) == 0
    assert main(["run", suite, "--profile", "smoke", *tiny_split]) == 0
    out = capsys.readouterr().out
    assert "8 stage(s) trained, 0 already done; 20 trial(s) run, 0 already done; 0 failed" in out
    assert (tmp_path / "runs-smoke" / "mlflow.db").exists()
    rep = tmp_path / "rep"
    assert main(["report", suite, "--profile", "smoke", *tiny_split, "--out", str(rep)]) == 0
    assert "## Results: fine_tune" in (rep / "report.md").read_text()


# The paper's fine-tuning results (ISIC2019*, 35 runs, mean ± sample SD), transcribed once from
# PROTOCOL.md: cell → ((accuracy mean, sd), (weighted F1 mean, sd)).
TABLE4 = {
    "SL/fine_tune": ((0.65701, 0.02109), (0.66873, 0.01710)),
    "SSL/fine_tune": ((0.69113, 0.01117), (0.69628, 0.00902)),
    "SL+IUD_full/fine_tune": ((0.69565, 0.00954), (0.70213, 0.00814)),
    "SSL+IUD_full/fine_tune": ((0.69852, 0.00893), (0.70550, 0.00746)),
    "SL+IUD_SSLp/fine_tune": ((0.69809, 0.01413), (0.70484, 0.01213)),
    "SSL+IUD_SSLp/fine_tune": ((0.69734, 0.01002), (0.70499, 0.00837)),
    "SL+IU_SSLp/fine_tune": ((0.69686, 0.01093), (0.70373, 0.00919)),
    "SSL+IU_SSLp/fine_tune": ((0.69778, 0.00923), (0.70406, 0.00784)),
    "SL+I_SSLp/fine_tune": ((0.70065, 0.01246), (0.70619, 0.01038)),
    "SSL+I_SSLp/fine_tune": ((0.69583, 0.00925), (0.70297, 0.00795)),
}
PROBE_TEXT = {"SL/linear_probe": 0.593, "SSL/linear_probe": 0.663,
              "SSL+I_SSLp/linear_probe": 0.694}


def test_isic2019star_declares_the_papers_published_numbers() -> None:
    suite = load_suite(ROOT / "suites" / "isic2019star.yaml", env={}).suite
    assert set(suite.published) == set(TABLE4) | set(PROBE_TEXT)
    for cell, ((acc, acc_sd), (f1, f1_sd)) in TABLE4.items():
        pub = suite.published[cell].values
        assert (pub["accuracy"].mean, pub["accuracy"].sd, pub["accuracy"].n) == (acc, acc_sd, 35)
        assert (pub["f1_weighted"].mean, pub["f1_weighted"].sd, pub["f1_weighted"].n) == (
            f1, f1_sd, 35)
    for cell, acc in PROBE_TEXT.items():
        pub = suite.published[cell].values
        assert list(pub) == ["accuracy"] and pub["accuracy"].mean == acc
        assert pub["accuracy"].sd is None  # the text gives no SD: shown, not tested
    # the paper declares no equivalence margin, and neither does its suite
    assert suite.report.margins == {} and all(c.margin is None for c in suite.contrasts)


def _exact(mean: float, sd: float, n: int, seed: int) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal(n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


def test_readme_paper_example_holds_for_the_shipped_suite() -> None:
    """The README says: the paper's SL < SSL is p = 1.27e-11, and SL + I (SSLp) vs
    SSL + I (SSLp), p = 0.071, is inconclusive, not a tie. Check both on the suite as shipped,
    with trials that have exactly the paper's means and SDs."""
    import pandas as pd

    from bench.analysis import analyse

    plan = build_plan(load_suite(ROOT / "suites" / "isic2019star.yaml", env={}), lenient=True)
    rows = []
    for i, (cell, ((acc, acc_sd), (f1, f1_sd))) in enumerate(TABLE4.items()):
        for seed, (a, f) in enumerate(zip(_exact(acc, acc_sd, 35, i),
                                          _exact(f1, f1_sd, 35, 100 + i), strict=True)):
            rows.append({"cell": cell, "replicate": "", "unit": "", "seed": seed,
                         "status": "FINISHED", "failure": "", "accuracy": a, "f1_weighted": f})
    data = analyse(plan, pd.DataFrame(rows), ["accuracy"])
    first = next(r for r in data.contrasts
                 if (r.a, r.b) == ("SSL/fine_tune", "SL/fine_tune"))
    assert f"{first.test.p:.3g}" == "1.27e-11" and first.verdict == "A ≻ B"
    tie = next(r for r in data.contrasts
               if (r.a, r.b) == ("SL+I_SSLp/fine_tune", "SSL+I_SSLp/fine_tune"))
    assert f"{tie.test.p:.2g}" == "0.071" and tie.margin is None
    assert tie.verdict == "inconclusive" and tie.scope == "1 pre-training run"
    readme = (ROOT / "README.md").read_text()
    assert "p = 1.27e-11" in readme
    assert "SL + I (SSLp) vs SSL + I (SSLp), p = 0.071, is inconclusive, not a tie" in readme
    # measured exactly as published: no replication verdict says "different"
    fine = [x for x in data.replication if x.cell in TABLE4]
    assert len(fine) == 20 and all(x.verdict == "inconclusive" for x in fine)
    assert all(x.test is not None and x.test.p == pytest.approx(1.0) for x in fine)
