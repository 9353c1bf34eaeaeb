"""Student architectures small enough for a Jetson-class device."""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["ARCHS", "build_student"]


def _cbr(i: int, o: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


class CnnSmall(nn.Sequential):
    """Three conv-pool blocks and a linear head over a 3×3 map (~2M MACs at 28×28, width 16)."""

    def __init__(self, channels: int, classes: int, width: int = 16):
        w = width
        super().__init__(
            *_cbr(channels, w),
            nn.MaxPool2d(2),
            *_cbr(w, 2 * w),
            nn.MaxPool2d(2),
            *_cbr(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(3),
            nn.Flatten(),
            nn.Linear(4 * w * 9, classes),
        )


class _Basic(nn.Module):
    def __init__(self, i: int, o: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(*_cbr(i, o, stride), nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o))
        self.skip = (
            nn.Identity()
            if stride == 1 and i == o
            else nn.Sequential(nn.Conv2d(i, o, 1, stride=stride, bias=False), nn.BatchNorm2d(o))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNet(nn.Module):
    """ResNet-8 (blocks=1) or a narrow ResNet-18 (blocks=2, four stages)."""

    def __init__(self, channels: int, classes: int, width: int = 16, blocks: int = 1, stages: int = 3):
        super().__init__()
        layers: list[nn.Module] = [*_cbr(channels, width)]
        c = width
        for s in range(stages):
            o = width * 2**s
            for b in range(blocks):
                layers.append(_Basic(c, o, 2 if (s > 0 and b == 0) else 1))
                c = o
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHS = {
    "cnn-small": lambda ch, k: CnnSmall(ch, k),
    "cnn-w8": lambda ch, k: CnnSmall(ch, k, width=8),  # ~7.6k parameters: for the smallest devices
    "cnn-w4": lambda ch, k: CnnSmall(ch, k, width=4),  # ~2k parameters
    "resnet8": lambda ch, k: ResNet(ch, k, width=16, blocks=1, stages=3),
    "resnet18-narrow": lambda ch, k: ResNet(ch, k, width=16, blocks=2, stages=4),
}


def build_student(arch: str, channels: int, classes: int) -> nn.Module:
    try:
        return ARCHS[arch](channels, classes)
    except KeyError:
        raise ValueError(f"unknown student architecture {arch!r}; choose from {', '.join(ARCHS)}") from None
