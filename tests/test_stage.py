"""The stage runner: freezing policies and bitwise-identical resume from epoch checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.config.schema import StageSpec
from bench.data.loader import ImageSet
from bench.models.registry import seeded_backbone
from bench.ssl.methods import resolve_method
from bench.ssl.pretrain import run_stage

CPU = torch.device("cpu")


def _data(n: int = 32) -> ImageSet:
    g = torch.Generator().manual_seed(1)
    return ImageSet(torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g),
                    torch.randint(0, 3, (n,), generator=g))


def _spec(**kw) -> StageSpec:
    base = dict(method="barlow_twins", data=["d:train"], epochs=2, warmup_epochs=1,
                batch_size=8, image_size=16, params={"projector": {"dims": [16, 16]}})
    base.update(kw)
    return StageSpec.model_validate(base)


def _snapshot(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


@pytest.mark.parametrize("train_bn", [False, True])
def test_last_block_leaves_everything_else_bitwise_unchanged(train_bn: bool) -> None:
    bb = seeded_backbone("tiny_resnet_w8", 0)
    before = _snapshot(bb)
    spec = _spec(unfreeze="last_block", train_bn=train_bn)
    out, _ = run_stage(bb, spec, resolve_method("barlow_twins"), _data(), None, CPU)
    after = out.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("layer4.1.") for k in changed)
    outside = {k for k in changed if not k.startswith("layer4.1.")}
    if train_bn:  # only BatchNorm parameters and statistics may move outside the block
        assert outside and all(".bn" in k or "downsample.1" in k or k.startswith("bn1")
                               for k in outside)
    else:
        assert outside == set()


def test_frozen_warmup_changes_only_the_projector() -> None:
    bb = seeded_backbone("tiny_resnet_w8", 0)
    before = _snapshot(bb)
    method = resolve_method("barlow_twins")
    seen = {}

    def after(phase: str, epoch: int, loss: float) -> None:
        if phase == "warmup":
            seen["backbone"] = _snapshot(bb)

    import bench.ssl.pretrain as pretrain

    captured = {}
    real = pretrain.run_epoch

    def spy(loss_fn, opt, *a, **k):
        captured.setdefault("ids", {id(p) for g in opt.param_groups for p in g["params"]})
        return real(loss_fn, opt, *a, **k)

    pretrain.run_epoch = spy
    try:
        run_stage(bb, _spec(epochs=1, warmup_epochs=1), method, _data(), None, CPU, None, after)
    finally:
        pretrain.run_epoch = real
    # after the warm-up epoch the encoder (weights and BN statistics) is bitwise unchanged
    assert all(torch.equal(before[k], seen["backbone"][k]) for k in before)
    # the warm-up optimiser held only projector parameters: Linear, BN, Linear (w, b each)
    assert not captured["ids"] & {id(p) for p in bb.parameters()}
    assert len(captured["ids"]) == 6


class _Stop(Exception):
    pass


def test_killed_stage_resumes_to_identical_weights(tmp_path: Path) -> None:
    spec = _spec(epochs=3, warmup_epochs=1)
    method = resolve_method("barlow_twins")
    full, _ = run_stage(seeded_backbone("tiny_resnet_w8", 0), spec, method, _data(), None, CPU)
    ckpt = tmp_path / "stage.pt"

    def die_after_2(phase: str, epoch: int, loss: float) -> None:
        if epoch == 2:
            raise _Stop

    # the hook runs after the epoch's checkpoint: dying in it at epoch 2 leaves epoch 2 saved
    with pytest.raises(_Stop):
        run_stage(seeded_backbone("tiny_resnet_w8", 0), spec, method, _data(), None, CPU,
                  ckpt, die_after_2)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    resumed, _ = run_stage(seeded_backbone("tiny_resnet_w8", 0), spec, method, _data(), None,
                           CPU, ckpt)
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
