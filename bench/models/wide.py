"""VICReg's widened ResNets (facebookresearch/vicreg ``resnet.py``): every width ×``widen``,
the stem included — unlike torchvision's ``wide_resnet50_2``, which widens only the bottlenecks'
inner convolutions. ``resnet200_2x`` is the ResNet-200 ×2 (4096-d features, about 250 M
parameters) whose VICReg ImageNet checkpoint the paper's discussion fine-tuned.

The modules follow torchvision's ResNet layout and parameter names (``conv1``, ``bn1``,
``layer1..4`` of ``Bottleneck``, ``downsample.0/1``), which are also the checkpoint's names, so
a VICReg state dict loads with every shape checked. VICReg pads the input by 1 with zeros and
then convolves the stem with padding 2: the same as torchvision's stem padding of 3.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

WIDE: dict[str, tuple[tuple[int, int, int, int], int]] = {
    "resnet50_2x": ((3, 4, 6, 3), 2),
    "resnet200_2x": ((3, 24, 36, 3), 2),
}
"""name → (bottlenecks per stage, widen)."""


class WideResNet(ResNet):
    """torchvision's ResNet with Bottlenecks and every width multiplied by ``widen``; no fc:
    (B, 3, H, W) → (B, 2048·widen)."""

    def __init__(self, layers: tuple[int, int, int, int], widen: int):
        super().__init__(Bottleneck, [1, 1, 1, 1])  # the shared parts; the stages are rebuilt
        base = 64 * widen
        self.inplanes = base
        self.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.layer1 = self._make_layer(Bottleneck, base, layers[0])
        self.layer2 = self._make_layer(Bottleneck, base * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(Bottleneck, base * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(Bottleneck, base * 8, layers[3], stride=2)
        for m in self.modules():  # VICReg's (and torchvision's) initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.feature_dim = base * 8 * Bottleneck.expansion
        self.fc = nn.Identity()


def build_wide(arch: str) -> WideResNet:
    """The wide ResNet registered as ``arch``."""
    layers, widen = WIDE[arch]
    return WideResNet(layers, widen)
