"""Weight sources of an init: ``random``, ``file:PATH`` and ``torchvision:<Enum>.<NAME>``.

Nothing is downloaded: a torchvision weight file must already be in torch's hub cache, and the
error says which file to place where. Files are read with ``torch.load(weights_only=True)``;
encoder keys that are missing or unexpected are reported by name.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bench.models.files import (
    WeightsError,
    init_fingerprint,
    resolve_weights_path,
    sha256_file,
    torchvision_weights_file,
)
from bench.models.registry import build_backbone, seeded_backbone

__all__ = ["WeightsError", "build_init", "extract_encoder_state", "init_fingerprint",
           "load_into", "resolve_weights_path", "sha256_file", "torchvision_weights_file"]

_PREFIXES = ("module.", "backbone.", "encoder.", "model.")
_IGNORED_HEADS = ("fc.", "projector.", "head.", "classifier.", "bn.", "predictor.")


def extract_encoder_state(obj: object) -> dict[str, torch.Tensor]:
    """Find the state dict in a checkpoint (nested ``state_dict``/``model``) and strip prefixes."""
    while isinstance(obj, dict) and not _is_tensor_dict(obj):
        for key in ("state_dict", "model", "encoder", "backbone"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        else:
            raise WeightsError("no state dict found in the checkpoint (keys: "
                               f"{sorted(obj)[:10]})")
    if not isinstance(obj, dict):
        raise WeightsError(f"the checkpoint holds a {type(obj).__name__}, not a state dict")
    out: dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        for p in _PREFIXES:
            while k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return _from_sequential(out)


_SEQUENTIAL_NAMES = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3",
                     "7": "layer4"}


def _from_sequential(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys of a ResNet body saved as ``nn.Sequential(*children)`` (fastai's ``create_body``,
    the paper's code: ``0.weight``, ``7.2.conv3.weight``) → torchvision names."""
    if not state or not all(k.split(".", 1)[0].isdigit() for k in state):
        return state
    out = {}
    for k, v in state.items():
        head, _, rest = k.partition(".")
        out[f"{_SEQUENTIAL_NAMES.get(head, head)}.{rest}"] = v
    return out


def _is_tensor_dict(d: dict) -> bool:
    return bool(d) and any(isinstance(v, torch.Tensor) for v in d.values())


def load_into(backbone: nn.Module, state: dict[str, torch.Tensor], origin: str) -> list[str]:
    """Load ``state`` into ``backbone``; error on missing/unexpected encoder keys or wrong shapes.

    Returns the keys that were ignored because they belong to a head (``fc.``, ``projector.``…).
    """
    enc, ignored = match_state(backbone, state, origin)
    backbone.load_state_dict(enc, strict=True)
    return ignored


def check_init(arch: str, source: str, base: Path | None = None) -> None:
    """Open an init's weights file and match it to the architecture (keys and shapes) without
    building the network: the model is made on the meta device (no memory, no init)."""
    path = resolve_weights_path(source, base)
    if path is None:
        return
    with torch.device("meta"):
        backbone = build_backbone(arch)
    match_state(backbone, load_state_file(path), str(path))


def match_state(backbone: nn.Module, state: dict[str, torch.Tensor], origin: str
                ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(the encoder entries of ``state``, the head keys ignored), once every key and shape of
    ``backbone`` is matched; :class:`WeightsError` listing what does not match otherwise."""
    ignored = sorted(k for k in state if k.startswith(_IGNORED_HEADS))
    enc = {k: v for k, v in state.items() if not k.startswith(_IGNORED_HEADS)}
    model = backbone.state_dict()
    expected = set(model)
    missing = sorted(expected - set(enc))
    unexpected = sorted(set(enc) - expected)
    if missing or unexpected:
        lines = [f"weights {origin} do not match the architecture:"]
        if missing:
            lines.append(f"  missing ({len(missing)}): {', '.join(missing[:20])}"
                         + (" …" if len(missing) > 20 else ""))
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): {', '.join(unexpected[:20])}"
                         + (" …" if len(unexpected) > 20 else ""))
        raise WeightsError("\n".join(lines))
    shapes = [f"{k}: file {tuple(v.shape)} vs model {tuple(model[k].shape)}"
              for k, v in enc.items() if tuple(v.shape) != tuple(model[k].shape)]
    if shapes:
        raise WeightsError(f"weights {origin} have wrong shapes: " + "; ".join(shapes[:10]))
    return enc, ignored


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a weights file safely (``weights_only=True``) and extract the encoder state."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for arbitrary objects, corrupt files, …
        raise WeightsError(
            f"cannot read weights {path} safely (torch.load weights_only=True): "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    return extract_encoder_state(obj)


def build_init(arch: str, source: str, seed: int, base: Path | None = None) -> nn.Module:
    """Backbone of an init with its weights loaded."""
    backbone = seeded_backbone(arch, seed)
    path = resolve_weights_path(source, base)
    if path is not None:
        load_into(backbone, load_state_file(path), str(path))
    return backbone
