"""The reference protocol (PROTOCOL.md of the paper's code), made load-bearing.

The table below is transcribed once from that protocol; the tests read the shipped paper suites
(every default resolved) and compare. The code's numbers are checked against independent
implementations or properties (the loss, the projector init, the optimiser groups, the LR
finder's stop, each augmentation step), so changing any of them fails a test.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from bench.config.schema import StageSpec

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")

# ------------------------------------------------------------------ the reference, transcribed
ISIC_TRAIN = {"AK": 306, "BCC": 500, "BKL": 467, "DF": 55, "MEL": 500, "NV": 500, "SCC": 171,
              "VASC": 55}
ISIC_EXTRA = {"AK": 63, "BCC": 274, "BKL": 110, "DF": 11, "MEL": 309, "NV": 458, "SCC": 43,
              "VASC": 12}
VIEW = {"flip_p": 0.5, "jitter_p": 0.8, "brightness": 0.24, "contrast": 0.24, "saturation": 0.12,
        "hue": 0.06, "grayscale_p": 0.2, "blur_sigma": (0.1, 2.0), "blur_kernel": 13,
        "rotate_p": 0.5, "rotate_deg": 45.0, "cutout_h": (50, 100), "cutout_w": (185, 190),
        "jitter": "kornia"}
VIEW1 = {**VIEW, "blur_p": 1.0, "solarize_p": 0.0}
VIEW2 = {**VIEW, "blur_p": 0.1, "solarize_p": 0.2}
STAGE = {"method": "barlow_twins", "epochs": 100, "warmup_epochs": 1, "warmup_lr": 1e-3,
         "batch_size": 128, "image_size": 256, "normalize": False, "train_bn": True,
         "precision": "fp32", "reset_optimizer": False}
STAGE_OPT = {"betas": (0.9, 0.99), "eps": 1e-5, "weight_decay": 1.5e-6}
BT_PARAMS = {"projector": {"dims": [8192, 8192, 8192], "batch_norm": True, "bias": True},
             "lambda_offdiag": 1 / 8192, "sparse_head": 0.01}
FINDER = {"method": "lr_finder", "start_lr": 1e-7, "end_lr": 10.0, "num_it": 100,
          "suggestion": "valley"}
ONE_CYCLE = {"kind": "one_cycle", "pct_start": 0.25, "div_factor": 25.0, "anneal": "cos"}
FINAL_DIV = 1e5  # final lr = max / 1e5
PROTOCOL = {"batch_size": 64, "image_size": 256, "epochs": 40, "warmup_lr": 1e-3,
            "normalize": False, "train_bn": True, "precision": "fp32", "drop_last": False}
PROTOCOL_OPT = {"betas": (0.9, 0.99), "eps": 1e-5, "weight_decay": 0.0}
AUGMENT = {"crop_scale": (0.7, 1.0), "crop_ratio": (3 / 4, 4 / 3), "flip_p": 0.25,
           "rotate_p": 0.25, "rotate_deg": 45.0, "crop_per_image": False}
STAGE_DATA = {"I_SSLp": (["isic:train"], None, "last_block"),
              "IU_SSLp": (["isic:train", "isic:pretrain_only", "pad:all"], None, "last_block"),
              "IUD_SSLp": (["isic:train", "isic:pretrain_only", "pad:all", "dermnet:all"],
                           [2, 2, 2, 1], "last_block"),
              "IUD_full": (["isic:train", "isic:pretrain_only", "pad:all", "dermnet:all"],
                           [2, 2, 2, 1], "all")}

IMAGES = {"isic": 23257, "pad": 2298, "dermnet": 19559}
"""Images per dataset after the reader's filters (ISIC: `_downsampled` dropped)."""
ITEMS_PER_EPOCH = {"I_SSLp": 2554, "IU_SSLp": 6132, "IUD_SSLp": 31823, "IUD_full": 31823}
ISIC_TEST = 19423


def _suite(name: str):
    from bench.plan import load_suite

    return load_suite(ROOT / "suites" / f"{name}.yaml", env={}).suite


def _has(model, expected: dict, where: str) -> None:
    for field, want in expected.items():
        got = getattr(model, field)
        if isinstance(want, dict):
            got = got if isinstance(got, dict) else got.model_dump()
            _has_dict(got, want, f"{where}.{field}")
        elif isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-12), f"{where}.{field}: {got} ≠ {want}"
        else:
            assert (tuple(got) if isinstance(got, list | tuple) else got) == (
                tuple(want) if isinstance(want, list | tuple) else want), \
                f"{where}.{field}: {got} ≠ {want}"


def _has_dict(got: dict, want: dict, where: str) -> None:
    for k, v in want.items():
        if isinstance(v, dict):
            _has_dict(got[k], v, f"{where}.{k}")
        else:
            assert got[k] == (pytest.approx(v) if isinstance(v, float) else v), \
                f"{where}.{k}: {got[k]} ≠ {v}"


# ------------------------------------------------------------------ the shipped paper suites
def test_isic_suite_data_follow_the_reference() -> None:
    s = _suite("isic2019star")
    isic = s.datasets["isic"]
    assert isic.format == "isic2019" and isic.drop_downsampled and isic.resize == "squash"
    assert isic.split.counts == {"train": ISIC_TRAIN, "pretrain_only": ISIC_EXTRA}
    assert isic.split.rest == "test"
    assert sum(ISIC_TRAIN.values()) == 2554 and sum(ISIC_EXTRA.values()) == 1280
    assert s.inits["SL"].weights == "torchvision:ResNet50_Weights.IMAGENET1K_V2"
    assert s.inits["SSL"].weights.startswith("file:") and "barlowtwins" in s.inits["SSL"].weights
    assert (s.inits["SL"].arch, s.inits["SSL"].arch) == ("resnet50", "resnet50")
    assert s.inits["VICReg200"].arch == "resnet200_2x"  # the discussion's optional init
    assert s.seeds.count == 35 and set(s.seeds.vary) == {"head", "order", "augment", "tta",
                                                         "lr_search"}


@pytest.mark.parametrize("name", list(STAGE_DATA))
def test_isic_suite_stages_follow_the_reference(name: str) -> None:
    from bench.ssl.methods import method_params

    stage = _suite("isic2019star").stages[name]
    data, repeat, unfreeze = STAGE_DATA[name]
    assert (stage.data, stage.repeat, stage.unfreeze) == (data, repeat, unfreeze)
    _has(stage, STAGE, name)
    _has(stage.optimizer, STAGE_OPT, f"{name}.optimizer")
    _has(stage.lr_search, FINDER, f"{name}.lr_search")
    _has(stage.schedule, ONE_CYCLE, f"{name}.schedule")
    assert stage.schedule.div_factor * stage.schedule.final_div_factor == FINAL_DIV
    params = method_params(stage.method).model_validate(stage.params).model_dump()
    _has_dict(params, BT_PARAMS, f"{name}.params")
    views = stage.views
    assert views.crop_per_image is False
    assert tuple(views.crop_scale) == (0.7, 1.0) and tuple(views.crop_ratio) == (3 / 4, 4 / 3)
    cutout = 0.33 if name.startswith("IUD") else 0.0
    _has(views.view1, {**VIEW1, "cutout_p": cutout}, f"{name}.views.view1")
    _has(views.view2, {**VIEW2, "cutout_p": cutout}, f"{name}.views.view2")


def test_isic_suite_declares_the_reference_image_counts() -> None:
    """The declared sizes of the shipped suite give the reference's parts and items per epoch
    before any data are in place (what `bench plan` costs the suite by)."""
    from bench.plan import build_plan, load_suite
    from bench.plan.cost import part_size, stage_images

    suite = _suite("isic2019star")
    assert {n: d.images for n, d in suite.datasets.items()} == IMAGES
    isic = suite.datasets["isic"].split
    assert (isic.counts, isic.rest) == ({"train": ISIC_TRAIN, "pretrain_only": ISIC_EXTRA},
                                        "test")
    plan = build_plan(load_suite(ROOT / "suites" / "isic2019star.yaml", env={}), lenient=True)
    assert set(plan.unread) == set(IMAGES)  # no data on a test machine: sizes as declared
    assert part_size(plan, "isic:test") == ISIC_TEST
    assert {s.name: stage_images(plan, s) for s in plan.stages} == ITEMS_PER_EPOCH


@pytest.mark.parametrize("name", ["fine_tune", "linear_probe"])
def test_isic_suite_protocols_follow_the_reference(name: str) -> None:
    p = _suite("isic2019star").protocols[name]
    assert (p.kind, p.train, p.test) == (name, "isic:train", "isic:test")
    _has(p, PROTOCOL, name)
    assert p.n_warmup == (1 if name == "fine_tune" else 0)
    _has(p.optimizer, PROTOCOL_OPT, f"{name}.optimizer")
    _has(p.lr_search, {**FINDER, "per": "trial"}, f"{name}.lr_search")
    _has(p.schedule, ONE_CYCLE, f"{name}.schedule")
    _has(p.augment, AUGMENT, f"{name}.augment")
    assert (p.tta.mode, p.tta.passes) == ("augment", 3)
    assert {"accuracy", "f1_weighted"} <= set(p.metrics)


def test_oral_suite_follows_the_reference() -> None:
    s = _suite("oral_histopathology")
    split = s.datasets["oral"].split
    assert (split.column, split.within, split.order, split.rounding) == (
        "folder", "train", "sorted", "floor")
    assert split.fractions == {"finetune": 0.025} and split.merge == {"test": ["val", "test"]}
    stage = s.stages["O_SSLp"]
    assert stage.data == ["oral_normal:train", "oral_oscc:finetune"] and stage.repeat == [1, 10]
    _has(stage, STAGE, "O_SSLp")
    _has(stage.views.view1, {**VIEW1, "cutout_p": 0.0}, "O_SSLp.views.view1")
    _has(stage.views.view2, {**VIEW2, "cutout_p": 0.0}, "O_SSLp.views.view2")
    for name in ("fine_tune", "linear_probe"):
        p = s.protocols[name]
        _has(p, PROTOCOL, name)
        assert p.augment.crop_per_image is False and (p.tta.mode, p.tta.passes) == ("augment", 3)


# ------------------------------------------------------------------ Barlow Twins, as written out
def _reference_bt(encoder, projector: nn.Sequential, x1, x2, lam: float, sparse: float):
    """The reference: both views as one 2B batch; standardise with the biased std, no eps;
    C = z1ᵀz2 / B; Σ(1 − Cᵢᵢ)² + λ Σ_{i≠j} Cᵢⱼ², plus sparse × Σⱼ ‖W[:, j]‖₂ of the last
    Linear."""
    z = projector(encoder(torch.cat([x1, x2]))).float()
    z1, z2 = z.chunk(2)
    z1 = (z1 - z1.mean(0)) / z1.std(0, unbiased=False)
    z2 = (z2 - z2.mean(0)) / z2.std(0, unbiased=False)
    c = z1.T @ z2 / z1.shape[0]
    on = ((1 - torch.diagonal(c)) ** 2).sum()
    off = (c ** 2).sum() - (torch.diagonal(c) ** 2).sum()
    last = [m for m in projector if isinstance(m, nn.Linear)][-1]
    return on + lam * off + sparse * last.weight.norm(dim=0).sum()


def test_barlow_twins_stage_loss_is_the_reference_one_batch_plus_the_sparse_head() -> None:
    from bench.models.heads import Normalize, NormalizedEncoder
    from bench.models.registry import seeded_backbone
    from bench.ssl.methods import resolve_method
    from bench.ssl.methods.params import BarlowTwinsParams

    torch.manual_seed(0)
    encoder = NormalizedEncoder(seeded_backbone("tiny_resnet_w8", 0), Normalize(False)).train()
    params = BarlowTwinsParams.model_validate({"projector": {"dims": [32, 32, 32]},
                                               "lambda_offdiag": 0.01, "sparse_head": 0.05})
    bt = resolve_method("barlow_twins")(encoder.feature_dim, params).train()
    x1, x2 = torch.rand(2, 16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    got = bt.loss(encoder, [x1, x2], None)
    want = _reference_bt(encoder, bt.projector, x1, x2, 0.01, 0.05)
    got, want = float(got.detach()), float(want.detach())
    assert got == pytest.approx(want, rel=1e-5)
    sparse = 0.05 * float(bt.projector[-1].weight.detach().norm(dim=0).sum())
    assert sparse > 1e-3 * want  # the head term is not negligible here: it is tested


def test_projector_is_kaiming_normal_with_zero_biases() -> None:
    from bench.ssl.methods.base import build_projector
    from bench.ssl.methods.params import ProjectorSpec

    torch.manual_seed(0)
    proj = build_projector(512, ProjectorSpec(dims=[1024, 1024]))
    for lin in [m for m in proj if isinstance(m, nn.Linear)]:
        fan_in = lin.weight.shape[1]
        assert float(lin.weight.detach().std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.03)
        assert abs(float(lin.weight.mean())) < 0.01 * math.sqrt(2 / fan_in) * 10
        assert torch.count_nonzero(lin.bias) == 0


def test_weight_decay_skips_batchnorm_and_biases() -> None:
    from bench.train.optim import param_groups

    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    groups = {g["weight_decay"]: {id(p) for p in g["params"]} for g in param_groups([net], 0.5)}
    decayed = {id(net[0].weight), id(net[2].weight)}
    assert groups[0.5] == decayed
    assert groups[0.0] == {id(p) for p in net.parameters()} - decayed


def _stage_run(monkeypatch, **kw):
    """Run a tiny stage, recording (phase, optimiser, lr of its first group) per epoch."""
    import bench.ssl.pretrain as pretrain
    from bench.data.loader import ImageSet
    from bench.models.registry import seeded_backbone
    from bench.ssl.methods import resolve_method

    seen = []
    real = pretrain.run_epoch

    def spy(loss_fn, opt, sched, batches, *args, **kwargs):
        seen.append(("warmup" if sched is None else "train", opt, opt.param_groups[0]["lr"]))
        return real(loss_fn, opt, sched, batches, *args, **kwargs)

    monkeypatch.setattr(pretrain, "run_epoch", spy)
    g = torch.Generator().manual_seed(1)
    data = ImageSet(torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8, generator=g), None)
    spec = StageSpec.model_validate({
        "method": "barlow_twins", "data": ["d:train"], "epochs": 1, "warmup_epochs": 1,
        "warmup_lr": 0.00123, "batch_size": 8, "image_size": 16,
        "lr_search": {"method": "fixed", "lr": 0.01},
        "params": {"projector": {"dims": [16, 16]}}, **kw})
    pretrain.run_stage(seeded_backbone("tiny_resnet_w8", 0), spec, resolve_method("barlow_twins"),
                       data, None, CPU)
    return seen


def test_stage_warmup_trains_at_the_warmup_lr_and_the_optimiser_resets_unless_told(
        monkeypatch) -> None:
    (warm, opt_w, lr_w), (train, opt_t, _) = _stage_run(monkeypatch)
    assert (warm, train) == ("warmup", "train") and lr_w == 0.00123
    assert opt_t is not opt_w  # default: a fresh Adam when the encoder unfreezes
    (_, kept_w, _), (_, kept_t, _) = _stage_run(monkeypatch, reset_optimizer=False)
    assert kept_t is kept_w and len(kept_t.state) > 0  # the reference: Adam's state carries


def test_lr_finder_stops_when_the_smoothed_loss_passes_four_times_its_minimum() -> None:
    from bench.config.schema import OptimizerSpec
    from bench.train.lr_finder import lr_find, smooth_losses
    from bench.train.optim import make_optimizer

    model = nn.Linear(2, 1)
    opt = make_optimizer([{"params": list(model.parameters()), "weight_decay": 0.0}],
                         OptimizerSpec(), 1e-3)
    # a loss that stays at 1, then jumps to 6: above 4× the minimum, below 10×
    raw = [1.0] * 20 + [6.0] * 80
    calls: list[int] = []

    def loss_fn(x, y):
        calls.append(1)
        return model(x).sum() * 0 + raw[len(calls) - 1]

    def batches():
        while True:
            yield torch.zeros(1, 2), None

    res = lr_find([model], opt, loss_fn, batches, 1e-7, 10.0, 100)
    smooth = smooth_losses(raw[:len(calls)])
    first = next(i for i, s in enumerate(smooth) if s > 4 * min(smooth[:i + 1]))
    assert len(res.lrs) == first + 1 < 100


# ------------------------------------------------------------------ the augmentation steps
def _view(**kw):
    from bench.ssl.augment import ViewSpec

    base = dict(flip_p=0, jitter_p=0, grayscale_p=0, blur_p=0, solarize_p=0, rotate_p=0,
                cutout_p=0)
    return ViewSpec(**{**base, **kw})


def test_solarize_draws_its_threshold_between_0_4_and_0_6() -> None:
    from bench.seeds import generator
    from bench.ssl.augment import solarize

    v = _view(solarize_p=1.0)
    low = solarize(torch.full((400, 3, 4, 4), 0.28), v, generator(1))   # +U(±0.1) < 0.4
    high = solarize(torch.full((400, 3, 4, 4), 0.72), v, generator(2))  # +U(±0.1) ≥ 0.6
    assert float(low.max()) <= 0.38 + 1e-6          # never inverted
    assert float(high.max()) <= 1 - 0.62 + 1e-6     # always inverted: 1 − (x + a)
    mid = solarize(torch.full((4000, 3, 1, 1), 0.5), v, generator(3))
    inverted = (mid[:, 0, 0, 0] < 0.45).float().mean()
    assert 0.3 < float(inverted) < 0.7             # the threshold itself is drawn around 0.5


def test_rotation_pads_by_reflection() -> None:
    from bench.data.augment import apply_flip_rotate

    out = apply_flip_rotate(torch.ones(2, 3, 32, 32), torch.zeros(2, dtype=torch.bool),
                            torch.tensor([45.0, -30.0]))
    assert float(out.min()) > 0.99  # zero padding would blacken the corners


def test_cutout_is_the_codes_rectangle_before_colour_and_blur() -> None:
    from bench.config.schema import ViewAugmentSpec
    from bench.seeds import generator
    from bench.ssl.augment import SSLViews, ViewSpec

    spec = ViewAugmentSpec()
    assert tuple(spec.cutout_h) == (50, 100) and tuple(spec.cutout_w) == (185, 190)
    v = ViewSpec(**{**_view().__dict__, "cutout_p": 1.0, "jitter_p": 1.0, "brightness": 0.0,
                    "saturation": 0.0, "hue": 0.0, "contrast": 0.5})
    views = SSLViews(size=256, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), view1=v, view2=v)
    x = torch.rand(8, 3, 256, 256, generator=generator(4)) * 0.5 + 0.25
    out = views.one(x, v, generator(5))
    centre = out[:, :, 128, 128]
    # cut first (as the code), then the contrast jitter moves the zeros towards the mean
    assert float((centre > 0).float().mean()) > 0.2
    zero = torch.stack([views.one(x[:1], ViewSpec(**{**_view().__dict__, "cutout_p": 1.0}),
                                  generator(i))[0, 0] == 0 for i in range(20)])
    h, w = zero.any(2).sum(1), zero.any(1).sum(1)
    assert 50 <= int(h.min()) and int(h.max()) <= 100 and 185 <= int(w.min()) <= int(w.max()) <= 190


# ------------------------------------------------------------------ the options the reference needs
def test_new_options_enter_a_key_only_when_set(tiny_suite: Path) -> None:
    from conftest import suite_plan

    base = suite_plan(tiny_suite)
    keys = lambda p: [c.key for c in p.cells] + [s.key for s in p.stages]  # noqa: E731
    same = suite_plan(tiny_suite, "protocols.ft.precision=auto", "protocols.ft.drop_last=true",
                      "protocols.ft.augment.crop_per_image=true", "stages.bt.precision=auto",
                      "stages.bt.reset_optimizer=true", "stages.bt.schedule.anneal=cos")
    assert keys(same) == keys(base)
    for override in ("protocols.ft.precision=fp32", "protocols.ft.drop_last=false",
                     "protocols.ft.augment.crop_per_image=false", "protocols.ft.schedule.anneal=linear"):
        changed = suite_plan(tiny_suite, override)
        ft = [c.key for c in changed.cells if c.protocol == "ft"]
        assert set(ft).isdisjoint(c.key for c in base.cells), override
        assert [c.key for c in changed.cells if c.protocol == "lp"] == \
            [c.key for c in base.cells if c.protocol == "lp"], override
    for override in ("stages.bt.precision=fp32", "stages.bt.reset_optimizer=false"):
        changed = suite_plan(tiny_suite, override)
        assert changed.stages[1].key != base.stages[1].key, override
        assert changed.stages[0].key == base.stages[0].key, override


def test_precision_decides_the_autocast() -> None:
    from bench.train.loop import autocast

    a, b = torch.rand(4, 4), torch.rand(4, 4)
    with autocast(CPU, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    for precision in ("fp32", "auto"):
        with autocast(CPU, precision):
            assert (a @ b).dtype == torch.float32
    with pytest.raises(ValueError):
        autocast(CPU, "fp8")


def _encoder_dtypes(path: str, precision: str) -> set[torch.dtype]:
    """The dtypes of the encoder's outputs over one tiny run of ``path`` (a fine-tune trial, a
    HeadBank probe or a Barlow Twins stage) on the CPU in ``precision``."""
    from bench.config.protocols import parse_protocol
    from bench.data.loader import ImageSet
    from bench.models.registry import seeded_backbone
    from bench.seeds import trial_seeds
    from bench.ssl.methods import resolve_method
    from bench.ssl.pretrain import run_stage
    from bench.train.probe_bank import run_probe_bank
    from bench.train.trial import run_trial

    seen: set[torch.dtype] = set()
    backbone = seeded_backbone("tiny_resnet_w8", 0)
    backbone.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    g = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8, generator=g),
                    torch.arange(16) % 2)
    common = dict(epochs=1, batch_size=8, image_size=16, precision=precision,
                  lr_search={"method": "fixed", "lr": 0.01})
    if path == "stage":
        spec = StageSpec.model_validate({"method": "barlow_twins", "data": ["d:train"],
                                         "params": {"projector": {"dims": [16, 16]}}, **common})
        run_stage(backbone, spec, resolve_method("barlow_twins"), data, None, CPU)
        return seen
    kind = "fine_tune" if path == "trial" else "linear_probe"
    spec = parse_protocol(dict(kind=kind, train="d:train", test="d:test", **common))
    seeds = trial_seeds(0, 0, [])
    if path == "trial":
        run_trial(backbone, spec, data, data, ["a", "b"], seeds, CPU)
    else:
        run_probe_bank(backbone, spec, data, data, ["a", "b"], [seeds, seeds], CPU, 0.01)
    return seen


@pytest.mark.parametrize("path", ["trial", "bank", "stage"])
def test_precision_reaches_every_training_path(path: str) -> None:
    """A suite's ``precision`` is the dtype the encoder computes in, in trials, probe banks and
    stages alike (``auto`` is fp32 off CUDA); tests/test_cuda.py checks the same on a GPU."""
    assert _encoder_dtypes(path, "bf16") == {torch.bfloat16}
    assert _encoder_dtypes(path, "fp32") == _encoder_dtypes(path, "auto") == {torch.float32}


def test_one_crop_per_batch_and_a_linear_one_cycle() -> None:
    from bench.config.schema import ScheduleSpec
    from bench.data.augment import TrainAugment
    from bench.seeds import generator
    from bench.train.optim import make_scheduler

    x = torch.rand(1, 3, 32, 32).expand(6, 3, 32, 32).contiguous()
    per_batch = TrainAugment(16, flip_p=0, rotate_p=0, crop_per_image=False)(x, generator(1))
    per_image = TrainAugment(16, flip_p=0, rotate_p=0)(x, generator(1))
    assert all(torch.equal(per_batch[0], per_batch[i]) for i in range(6))
    assert not all(torch.equal(per_image[0], per_image[i]) for i in range(6))
    from bench.config.protocols import parse_protocol
    from bench.train.evaluate import augment_for

    spec = parse_protocol(dict(kind="fine_tune", train="d:train", test="d:test", epochs=1,
                               augment={"crop_per_image": False}))
    assert augment_for(spec).crop_per_image is False  # the protocol's train and TTA passes
    lrs = {}
    for anneal in ("cos", "linear"):
        opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = make_scheduler(opt, ScheduleSpec(anneal=anneal), 1.0, 100)
        seen = []
        for _ in range(100):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        lrs[anneal] = seen
    start, peak = 1 / 25, 1.0
    for i in (6, 12, 18):  # a quarter, half and three quarters of the rise (24 steps)
        assert lrs["linear"][i] == pytest.approx(start + (peak - start) * i / 24, rel=1e-2)
        assert lrs["cos"][i] == pytest.approx(
            start + (peak - start) * (1 - math.cos(math.pi * i / 24)) / 2, rel=1e-2)


def test_drop_last_false_trains_on_the_last_partial_batch(monkeypatch) -> None:
    import bench.train.trial as trial
    from bench.config.protocols import parse_protocol
    from bench.data.loader import ImageSet
    from bench.models.registry import seeded_backbone
    from bench.seeds import trial_seeds

    steps, served = [], []
    real, real_batches = trial.make_scheduler, trial.batches

    def spy(opt, spec, max_lr, total):
        steps.append(total)
        return real(opt, spec, max_lr, total)

    def counted(*args, **kwargs):  # the batches a training epoch is really served
        for i, b in enumerate(real_batches(*args, **kwargs)):
            served.append(i + 1)
            yield b

    monkeypatch.setattr(trial, "make_scheduler", spy)
    monkeypatch.setattr(trial, "batches", counted)
    g = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (22, 3, 16, 16), dtype=torch.uint8, generator=g),
                    torch.arange(22) % 2)
    for drop_last, want in ((True, 2), (False, 3)):  # 22 images, batches of 8
        spec = parse_protocol(dict(kind="fine_tune", train="d:train", test="d:test", epochs=1,
                                   warmup_epochs=0, batch_size=8, image_size=16,
                                   drop_last=drop_last, lr_search={"method": "fixed"},
                                   tta={"mode": "clean"}))
        served.clear()
        trial.run_trial(seeded_backbone("tiny_resnet_w8", 0), spec, data, data, ["a", "b"],
                        trial_seeds(0, 0, []), CPU)
        assert steps[-1] == want and max(served) == want
    one_left = parse_protocol(dict(kind="fine_tune", train="d:train", test="d:test", epochs=1,
                                   batch_size=7, image_size=16, drop_last=False))
    with pytest.raises(ValueError, match="last batch of 1 image"):
        trial.run_trial(seeded_backbone("tiny_resnet_w8", 0), one_left, data, data, ["a", "b"],
                        trial_seeds(0, 0, []), CPU)


def test_per_class_auroc_and_average_precision_match_their_definitions() -> None:
    import numpy as np

    from bench.train.metrics import compute_metrics

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    probs = rng.dirichlet(np.ones(3), 200) + np.eye(3)[labels] * 0.3
    probs /= probs.sum(1, keepdims=True)
    m = compute_metrics(probs, labels, ["a", "b", "c"])
    for c, name in enumerate("abc"):
        pos, neg = probs[labels == c, c], probs[labels != c, c]
        auc = ((pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean())
        assert m[f"auroc_{name}"] == pytest.approx(auc, abs=1e-12)
        order = np.argsort(-probs[:, c], kind="stable")
        hit = (labels[order] == c).astype(float)
        precision_at = np.cumsum(hit) / np.arange(1, len(hit) + 1)
        ap = float((precision_at * hit).sum() / hit.sum())  # no ties in continuous scores
        assert m[f"ap_{name}"] == pytest.approx(ap, abs=1e-12)
    assert m["ap_macro"] == pytest.approx(np.mean([m[f"ap_{n}"] for n in "abc"]))


def test_plan_explain_prints_every_setting_with_defaults_explicit(capsys) -> None:
    from ruamel.yaml import YAML

    from bench.cli import main

    assert main(["plan", str(ROOT / "suites" / "isic2019star.yaml"), "--explain",
                 "--allow-missing"]) == 0
    doc = YAML(typ="safe").load(capsys.readouterr().out)
    assert set(doc) == {"inits", "stages", "protocols"}
    assert set(doc["stages"]) == set(STAGE_DATA) and set(doc["protocols"]) == {"fine_tune",
                                                                              "linear_probe"}
    stage = doc["stages"]["I_SSLp"]
    assert stage["params"]["projector"] == BT_PARAMS["projector"]   # a default made explicit
    assert stage["views"]["view2"]["solarize_p"] == 0.2 and stage["precision"] == "fp32"
    ft = doc["protocols"]["fine_tune"]
    assert ft["schedule"]["anneal"] == "cos" and ft["drop_last"] is False
    assert ft["augment"]["crop_per_image"] is False and ft["tta"] == {"mode": "augment",
                                                                      "passes": 3}


def test_kornia_jitter_mode_is_kornias_colorjitter() -> None:
    import kornia

    from bench.seeds import generator
    from bench.ssl.augment import _kornia_jitter, colour_jitter

    x = torch.rand(6, 3, 16, 16, generator=generator(0))
    g = generator(1)
    b, c = (0.76 + 0.48 * torch.rand(6, generator=g) for _ in range(2))
    s, h = 0.88 + 0.24 * torch.rand(6, generator=g), 0.12 * torch.rand(6, generator=g) - 0.06
    aug = kornia.augmentation.ColorJitter(0.24, 0.24, 0.12, 0.06, p=1.0)
    aug(x)
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        params = {**aug._params, "brightness_factor": b, "contrast_factor": c,
                  "saturation_factor": s, "hue_factor": h, "order": torch.tensor(order)}
        assert torch.equal(_kornia_jitter(x, (b, c, s, h), order), aug(x, params=params))
    # the order is drawn per batch from the view's generator; "fixed" keeps bench's own order
    v = _view(jitter_p=1.0, brightness=0.24, contrast=0.24, saturation=0.12, hue=0.06)
    kv = _view(jitter_p=1.0, brightness=0.24, contrast=0.24, saturation=0.12, hue=0.06,
               jitter="kornia")
    from bench.data.augment import bernoulli, uniform

    orders = set()
    for i in range(8):  # the documented draws: gate, b, c, s, h, then the order
        g = generator(i)
        bernoulli(6, 1.0, g)
        f = tuple(uniform(6, lo, hi, g) for lo, hi in ((0.76, 1.24), (0.76, 1.24), (0.88, 1.12),
                                                      (-0.06, 0.06)))
        order = torch.randperm(4, generator=g).tolist()
        orders.add(tuple(order))
        assert torch.allclose(colour_jitter(x, kv, generator(i)), _kornia_jitter(x, f, order))
    assert len(orders) >= 3  # a random order per batch
    assert not torch.equal(colour_jitter(x, v, generator(2)), colour_jitter(x, kv, generator(2)))


def test_vicregs_resnet200_2x_has_its_checkpoint_layout() -> None:
    from bench.models.registry import build_backbone
    from bench.models.wide import WideResNet

    with torch.device("meta"):  # structure only: no memory for 250 M parameters
        big = build_backbone("resnet200_2x")
    shapes = {k: tuple(v.shape) for k, v in big.state_dict().items()}
    assert big.feature_dim == 4096 and not any(k.startswith("fc.") for k in shapes)
    assert [len(getattr(big, f"layer{i}")) for i in range(1, 5)] == [3, 24, 36, 3]
    # VICReg's widths (resnet.py, widen=2): a 128-channel stem, planes 128…1024, 4× expansion
    assert shapes["conv1.weight"] == (128, 3, 7, 7) and shapes["bn1.weight"] == (128,)
    assert shapes["layer1.0.conv1.weight"] == (128, 128, 1, 1)
    assert shapes["layer1.0.conv3.weight"] == (512, 128, 1, 1)
    assert shapes["layer1.0.downsample.0.weight"] == (512, 128, 1, 1)
    assert shapes["layer4.2.conv2.weight"] == (1024, 1024, 3, 3)
    assert shapes["layer4.2.conv3.weight"] == (4096, 1024, 1, 1)
    assert sum(p.numel() for p in big.parameters()) == pytest.approx(250e6, rel=0.002)
    small = WideResNet((1, 1, 1, 1), widen=2).eval()
    x = torch.rand(2, 3, 32, 32)
    assert small(x).shape == (2, 4096)
    # VICReg pads by 1 with zeros, then convolves with padding 2: torchvision's padding 3
    pad = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1)), small.conv1.weight, stride=2,
                               padding=2)
    assert torch.allclose(pad, small.conv1(x), atol=1e-6)


def test_fp16_scales_its_losses_and_is_refused_without_cuda(tiny_suite: Path, capsys) -> None:
    from bench.cli import main
    from bench.train.loop import grad_scaler, step

    assert grad_scaler(CPU, "fp32") is None and grad_scaler(CPU, "bf16") is None
    # through a loss scaler, an optimiser step is the plain one (the scale cancels out)
    updates = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=1024.0)):
        torch.manual_seed(0)
        lin = nn.Linear(3, 1)
        opt = torch.optim.SGD(lin.parameters(), lr=0.1)
        step(lin(torch.ones(4, 3)).pow(2).mean(), opt, scaler)
        updates.append(lin.weight.detach().clone())
    assert torch.allclose(updates[0], updates[1])
    rc = main(["run", str(tiny_suite), "--set", "protocols.ft.precision=fp16", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "protocols.ft.precision: fp16 needs a CUDA device" in err, err
    assert not (tiny_suite.parent / "out" / "encoders").exists()  # nothing trained


def test_keys_of_finished_runs_stay_what_they_were(tiny_suite: Path) -> None:
    """The tiny suite's keys as bench computed them before the options above existed: a store
    written then still resumes without re-running anything."""
    from conftest import suite_plan

    plan = suite_plan(tiny_suite)
    assert plan.inits["rnd"].key.startswith("1593fd123f82060a")
    assert [s.key[:16] for s in plan.stages] == ["fd2cf2850bd917fb", "4076a1e5840accb1"]
    assert plan.cells[0].key.startswith("234b223af9afc5b5")
    assert plan.trials[0].key.startswith("df4544a6f8d1844172e9")


@pytest.mark.parametrize("seed", range(6))
def test_metrics_equal_sklearn(seed: int) -> None:
    """Every classification metric against sklearn, on probabilities with ties (rounded),
    a class never predicted and, for odd seeds, a class absent from the labels."""
    import numpy as np
    from sklearn.metrics import (
        average_precision_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    from bench.train.metrics import compute_metrics

    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(20, 300)), 4
    labels = rng.integers(0, c - (seed % 2), n)
    probs = rng.dirichlet(np.ones(c), n) + np.eye(c)[labels] * rng.uniform(0, 0.5)
    probs[:, 3] *= 0.1  # class d is rarely the top one
    probs = np.round(probs / probs.sum(1, keepdims=True), 2)  # ties in the scores
    names = ["a", "b", "c", "d"]
    m = compute_metrics(probs, labels, names)
    pred = probs.argmax(1)
    every = list(range(c))
    assert m["f1_weighted"] == pytest.approx(f1_score(labels, pred, average="weighted",
                                                      zero_division=0), abs=1e-12)
    assert m["f1_macro"] == pytest.approx(f1_score(labels, pred, average="macro",
                                                   zero_division=0, labels=every), abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, pred),
                                                   abs=1e-12)
    prec, rec, f1, _ = precision_recall_fscore_support(labels, pred, labels=every,
                                                       average=None, zero_division=0)
    for i, name in enumerate(names):
        assert (m[f"precision_{name}"], m[f"recall_{name}"], m[f"f1_{name}"]) == pytest.approx(
            (prec[i], rec[i], f1[i]), abs=1e-12)
    for k in np.unique(labels):
        assert m[f"auroc_{names[k]}"] == pytest.approx(roc_auc_score(labels == k, probs[:, k]),
                                                       abs=1e-12)
        assert m[f"ap_{names[k]}"] == pytest.approx(
            average_precision_score(labels == k, probs[:, k]), abs=1e-12)
    assert m["confusion"] == confusion_matrix(labels, pred, labels=every).tolist()
