"""The CUDA path: augmentations, trials, HeadBank and a Barlow Twins stage on a GPU.

Skipped without CUDA (CI has none). On a GPU machine: ``pytest tests/test_cuda.py``. The
augmentations must equal the CPU's (their random draws stay on the CPU generator); training runs
under bf16 autocast with channels_last, so it is checked for sound results, not CPU equality.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.config.protocols import ProtocolBase, parse_protocol
from bench.config.schema import StageSpec
from bench.data.augment import TrainAugment
from bench.data.loader import ImageSet, balanced_weights, batches
from bench.models.registry import seeded_backbone
from bench.seeds import trial_seeds
from bench.ssl.augment import SSLViews
from bench.ssl.methods import resolve_method
from bench.ssl.pretrain import run_stage
from bench.train.probe_bank import run_probe_bank
from bench.train.trial import run_trial

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
GPU = torch.device("cuda")
CLASSES = ["a", "b", "c"]


def _sets(n_train: int = 96, size: int = 32) -> tuple[ImageSet, ImageSet]:
    g = torch.Generator().manual_seed(0)
    n = n_train + 48
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randint(0, 120, (n, 3, size, size), dtype=torch.uint8, generator=g)
    x[:, 0] += (y * 60).to(torch.uint8)[:, None, None]  # a learnable colour cue
    return ImageSet(x[:n_train], y[:n_train]), ImageSet(x[n_train:], y[n_train:])


def _proto(kind: str, **kw) -> ProtocolBase:
    base = dict(kind=kind, train="d:train", test="d:test", epochs=6, batch_size=16,
                image_size=32, lr_search={"method": "fixed", "lr": 0.01})
    base.update(kw)
    return parse_protocol(base)


@pytest.mark.parametrize("source", ["host", "device"])
def test_cuda_batches_equal_the_cpu_batches(source: str) -> None:
    """The prefetching pipeline (pinned double buffers, side-stream copies) and device-resident
    images give exactly the CPU's batches: shuffled or weighted, repeated items, a short last one."""
    train, _ = _sets(n_train=90)
    base = ImageSet(train.images, train.labels, items=torch.arange(90).repeat(2))
    data = ImageSet(base.images.pin_memory(), base.labels, base.items)
    if source == "device":
        data = ImageSet(base.images.to(GPU), base.labels.to(GPU), base.items)
    for kw in ({"drop_last": False}, {"drop_last": True, "weights": balanced_weights(base)}):
        cpu = list(batches(base, 16, torch.device("cpu"), torch.Generator().manual_seed(3), **kw))
        gpu = list(batches(data, 16, GPU, torch.Generator().manual_seed(3), **kw))
        assert len(cpu) == len(gpu) > 0
        for (xc, yc), (xg, yg) in zip(cpu, gpu, strict=True):
            assert xg.is_cuda and yg.is_cuda and torch.equal(yc, yg.cpu())
            # the same pixels (x / 255 may differ by an ulp between CPU and GPU division)
            assert torch.equal((xc * 255).round(), (xg.cpu() * 255).round())
            assert (xc - xg.cpu()).abs().max() < 1e-6


@pytest.mark.parametrize("augment", [TrainAugment(size=24), SSLViews(size=24)],
                         ids=["train", "ssl-views"])
def test_augmentations_on_cuda_equal_the_cpu(augment) -> None:
    x = torch.rand(16, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    cpu = augment(x, torch.Generator().manual_seed(7))
    gpu = augment(x.to(GPU), torch.Generator().manual_seed(7))
    for c, g in zip(cpu if isinstance(cpu, tuple) else (cpu,),
                    gpu if isinstance(gpu, tuple) else (gpu,), strict=True):
        assert g.device.type == "cuda"
        assert (c - g.cpu()).abs().max() < 2e-3


@pytest.mark.parametrize("kind", ["fine_tune", "linear_probe"])
def test_a_trial_on_cuda_learns_as_on_the_cpu(kind: str) -> None:
    train, test = _sets()
    res = {d: run_trial(seeded_backbone("tiny_resnet_w8", 0), _proto(kind), train, test, CLASSES,
                        trial_seeds(0, 0, ["head"]), torch.device(d)) for d in ("cpu", "cuda")}
    probs = res["cuda"].probs
    assert np.isfinite(probs).all() and np.allclose(probs.sum(1), 1, atol=1e-3)
    # chance is 1/3; bf16 and other kernels may move a few of the 48 test images
    assert res["cuda"].metrics["accuracy"] >= res["cpu"].metrics["accuracy"] - 0.15 > 0.2


def test_headbank_on_cuda_equals_separate_probes() -> None:
    train, test = _sets()
    proto = _proto("linear_probe", epochs=3, tta={"mode": "clean"})
    seeds = [trial_seeds(i, 0, ["head"]) for i in range(5)]
    bank = run_probe_bank(seeded_backbone("tiny_resnet_w8", 0), proto, train, test, CLASSES,
                          seeds, GPU, 0.01)
    for s, b in zip(seeds, bank, strict=True):
        single = run_trial(seeded_backbone("tiny_resnet_w8", 0), proto, train, test, CLASSES, s,
                           GPU)
        assert np.abs(single.probs - b.probs).max() < 2e-2  # bf16 features, other kernels


def test_barlow_twins_stage_on_cuda() -> None:
    train, _ = _sets()
    spec = StageSpec.model_validate(dict(
        method="barlow_twins", data=["d:train"], epochs=2, batch_size=16, image_size=32,
        lr_search={"method": "fixed", "lr": 1e-3}, params={"projector": {"dims": [64, 64]}}))
    before = {k: v.clone() for k, v in seeded_backbone("tiny_resnet_w8", 0).state_dict().items()}
    backbone, summary = run_stage(seeded_backbone("tiny_resnet_w8", 0), spec,
                                  resolve_method("barlow_twins"), ImageSet(train.images, None),
                                  None, GPU)
    after = backbone.state_dict()
    assert all(v.device.type == "cpu" for v in after.values())
    assert all(np.isfinite(v) for v in summary.values())
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", torch.float32),
                                                  ("auto", torch.bfloat16),
                                                  ("fp16", torch.float16)])
def test_precision_decides_the_forward_dtype_on_cuda(precision: str, dtype: torch.dtype) -> None:
    """``precision: fp32`` trains without autocast (the reference code); ``auto`` in bf16; fp16
    with a loss scaler; each trial still learns."""
    import bench.train.trial as trial

    seen: list[torch.dtype] = []
    real = trial.Classifier

    class Spy(real):  # the classifier records the dtype of its head's output
        def forward(self, x):
            out = super().forward(x)
            seen.append(out.dtype)
            return out

    train, test = _sets()
    trial.Classifier = Spy
    try:
        res = run_trial(seeded_backbone("tiny_resnet", 0), _proto("fine_tune", precision=precision),
                        train, test, CLASSES, trial_seeds(0, 0, []), GPU)
    finally:
        trial.Classifier = real
    assert set(seen) == {dtype}
    assert res.metrics["accuracy"] > 0.5


@pytest.mark.parametrize("compiled", [False, True])
def test_calibrate_measures_on_cuda_eager_and_compiled(compiled: bool) -> None:
    """``bench calibrate`` times an encoder on CUDA as ``bench run`` trains it (channels_last,
    and through ``torch.compile`` with ``--compile``): positive, finite seconds per image."""
    from bench.execute.calibrate import Example, device_class, measure

    ex = Example("trials:fine_tune", "tiny_resnet_w8", 32, 16, True, "fp32")
    fwd, train = measure(ex, GPU, 0.5, compiled)
    assert 0 < fwd < train < 1 and np.isfinite([fwd, train]).all()
    assert device_class(GPU, compiled).endswith("+compile") == compiled
