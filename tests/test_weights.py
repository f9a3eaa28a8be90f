"""Weight sources: safe loading, prefixes, reported key mismatches, offline torchvision."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from bench.models.registry import seeded_backbone
from bench.models.weights import WeightsError, build_init, init_fingerprint, sha256_file


def _state() -> dict[str, torch.Tensor]:
    return seeded_backbone("tiny_resnet_w8", 5).state_dict()


def _same(a: torch.nn.Module, b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, b[k]) for k, v in a.state_dict().items())


def test_plain_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save(_state(), path)
    assert _same(build_init("tiny_resnet_w8", f"file:{path}", 0), _state())
    assert init_fingerprint("tiny_resnet_w8", f"file:{path}", 0) == sha256_file(path)


def test_nested_module_prefixed_checkpoint_with_head(tmp_path: Path) -> None:
    state = {f"module.{k}": v for k, v in _state().items()}
    state["module.fc.weight"] = torch.zeros(3, 64)
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": state}, path)
    assert _same(build_init("tiny_resnet_w8", f"file:{path}", 0), _state())


def test_missing_layer_is_listed(tmp_path: Path) -> None:
    state = {k: v for k, v in _state().items() if not k.startswith("layer3.")}
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"missing \(\d+\): layer3\.0\.bn1\.bias"):
        build_init("tiny_resnet_w8", f"file:{path}", 0)


def test_wrong_architecture_reports_unexpected_keys(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(seeded_backbone("tiny_resnet", 0).state_dict(), path)
    with pytest.raises(WeightsError, match="wrong shapes"):
        build_init("tiny_resnet_w8", f"file:{path}", 0)


class _Evil:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_pickle_with_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    with pytest.raises(WeightsError, match="weights_only=True"):
        build_init("tiny_resnet_w8", f"file:{path}", 0)


def test_missing_file_and_offline_torchvision(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(WeightsError, match="weights file not found"):
        build_init("tiny_resnet_w8", f"file:{tmp_path / 'nope.pt'}", 0)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsError) as info:
        build_init("resnet50", "torchvision:ResNet50_Weights.IMAGENET1K_V2", 0)
    msg = str(info.value)
    assert "never downloads" in msg and "resnet50-11ad3fa6.pth" in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    with pytest.raises(WeightsError, match="unknown torchvision weights"):
        build_init("resnet50", "torchvision:ResNet50_Weights.IMAGENET9K", 0)


def test_random_init_depends_only_on_seed() -> None:
    a = seeded_backbone("tiny_resnet_w8", 1).state_dict()
    torch.manual_seed(123)
    b = seeded_backbone("tiny_resnet_w8", 1).state_dict()
    c = seeded_backbone("tiny_resnet_w8", 2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_reference_code_sequential_keys(tmp_path: Path) -> None:
    names = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    state = {}
    for k, v in _state().items():
        head, _, rest = k.partition(".")
        state[f"encoder.{names[head]}.{rest}"] = v
    assert "encoder.7.1.conv2.weight" in state
    path = tmp_path / "seq.pth"
    torch.save(state, path)
    assert _same(build_init("tiny_resnet_w8", f"file:{path}", 0), _state())
