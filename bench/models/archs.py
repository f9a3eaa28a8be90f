"""Architecture names (no torch import: suites are validated without it)."""

from __future__ import annotations

ARCHS: dict[str, str] = {
    "tiny_resnet": "TinyResNet(width=16), 128-d features (CPU tests and the demo)",
    "tiny_resnet_w8": "TinyResNet(width=8), 64-d features (fastest tests)",
    "resnet18": "torchvision ResNet-18, 512-d",
    "resnet34": "torchvision ResNet-34, 512-d",
    "resnet50": "torchvision ResNet-50, 2048-d",
    "resnet101": "torchvision ResNet-101, 2048-d",
    "resnet152": "torchvision ResNet-152, 2048-d",
    "wide_resnet50_2": "torchvision Wide ResNet-50-2, 2048-d",
    "resnet50_2x": "VICReg's ResNet-50 ×2 (every width doubled), 4096-d",
    "resnet200_2x": "VICReg's ResNet-200 ×2 (every width doubled), 4096-d, ~250 M parameters",
}

UNFREEZE_GROUPS = ("all", "layer4", "last_block")
