"""A tiny ResNet for CPU tests and the demo: the torchvision ResNet layout (stem, layer1..4 of
BasicBlocks, global average pool, no fc) at a fraction of the width, so that parameter groups such as
``layer4[-1]`` mean the same thing as on a ResNet-50."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock


class TinyResNet(nn.Module):
    """ResNet with BasicBlocks and widths ``(w, 2w, 4w, 8w)``; input (B, 3, H, W) → (B, 8w).

    Args:
        width: channels of layer1.
        blocks: BasicBlocks per stage (``layer4[-1]`` is the last one).
    """

    def __init__(self, width: int = 16, blocks: tuple[int, int, int, int] = (1, 1, 1, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.inplanes = width
        widths = (width, 2 * width, 4 * width, 8 * width)
        self.layer1 = self._make_layer(widths[0], blocks[0], stride=1)
        self.layer2 = self._make_layer(widths[1], blocks[1], stride=2)
        self.layer3 = self._make_layer(widths[2], blocks[2], stride=2)
        self.layer4 = self._make_layer(widths[3], blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = widths[3]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, n: int, stride: int) -> nn.Sequential:
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(n - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float → (B, feature_dim)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.maxpool(x)))))
        return torch.flatten(self.avgpool(x), 1)
