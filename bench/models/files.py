"""Weight files of an init, found and fingerprinted without importing torch (fast ``bench plan``).

``random`` has no file; ``file:PATH`` is a path (relative to the suite); ``torchvision:<Enum>.<NAME>``
is the file torchvision would download into torch's hub cache — bench never downloads, the error
says which URL to fetch and where to place it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from bench.errors import BenchError

TORCHVISION_URLS: dict[str, str] = {
    "ResNet18_Weights.IMAGENET1K_V1": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "ResNet34_Weights.IMAGENET1K_V1": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "ResNet50_Weights.IMAGENET1K_V1": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "ResNet50_Weights.IMAGENET1K_V2": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
    "ResNet101_Weights.IMAGENET1K_V1":
        "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    "ResNet101_Weights.IMAGENET1K_V2":
        "https://download.pytorch.org/models/resnet101-cd907fc2.pth",
    "ResNet152_Weights.IMAGENET1K_V1":
        "https://download.pytorch.org/models/resnet152-394f9c45.pth",
    "ResNet152_Weights.IMAGENET1K_V2":
        "https://download.pytorch.org/models/resnet152-f82ba261.pth",
    "Wide_ResNet50_2_Weights.IMAGENET1K_V1":
        "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth",
    "Wide_ResNet50_2_Weights.IMAGENET1K_V2":
        "https://download.pytorch.org/models/wide_resnet50_2-9ba9bcbe.pth",
}
"""torchvision's URLs for the ResNet weights (a test checks them against torchvision's enums);
other enums are looked up in torchvision itself."""


def hub_dir() -> Path:
    """torch's hub folder, as ``torch.hub.get_dir()`` computes it (``$TORCH_HOME/hub``, else
    ``$XDG_CACHE_HOME/torch/hub``, else ``~/.cache/torch/hub``)."""
    if "torch" in sys.modules:
        return Path(sys.modules["torch"].hub.get_dir())
    cache = os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    home = os.environ.get("TORCH_HOME", os.path.join(cache, "torch"))
    return Path(os.path.expanduser(home)) / "hub"


class WeightsError(BenchError, RuntimeError):
    """Weights cannot be found, read or matched to the architecture."""


class MissingWeights(WeightsError):
    """The weights file is not on this machine (messages add where to get it)."""


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def torchvision_weights_file(source: str) -> tuple[Path, str]:
    """(expected local path, download URL) of ``torchvision:ResNet50_Weights.IMAGENET1K_V2``."""
    spec = source.removeprefix("torchvision:")
    url = TORCHVISION_URLS.get(spec)
    if url is None:
        import torchvision.models as tvm

        try:
            enum_name, member = spec.split(".")
            url = getattr(getattr(tvm, enum_name), member).url
        except (ValueError, AttributeError) as exc:
            raise WeightsError(
                f"unknown torchvision weights {spec!r}; expected e.g. "
                "ResNet50_Weights.IMAGENET1K_V2"
            ) from exc
    folder = hub_dir() / "checkpoints"
    return folder / url.rsplit("/", 1)[-1], url


def resolve_weights_path(source: str, base: Path | None = None) -> Path | None:
    """Local file of a weights source (``None`` for ``random``); error if it is absent."""
    if source == "random":
        return None
    if source.startswith("file:"):
        path = Path(source.removeprefix("file:")).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise MissingWeights(f"weights file not found: {path}")
        return path
    path, url = torchvision_weights_file(source)
    if not path.is_file():
        raise MissingWeights(
            f"torchvision weights {source.removeprefix('torchvision:')} are not on this machine. "
            f"bench never downloads: fetch {url} and place it as {path} "
            f"(or set TORCH_HOME so that <TORCH_HOME>/hub/checkpoints/ holds it)"
        )
    return path


def init_fingerprint(arch: str, source: str, seed: int, base: Path | None = None) -> str:
    """Content fingerprint of an init: sha256 of the weights file, or of (arch, seed) if random."""
    path = resolve_weights_path(source, base)
    if path is None:
        return hashlib.sha256(f"random:{arch}:{seed}".encode()).hexdigest()
    return sha256_file(path)
