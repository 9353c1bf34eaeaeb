"""Students: the built-in zoo and your own ``torch.nn.Module``.

Every built-in is a :class:`Student` — a ``stem``, a list of ``blocks`` and a ``head`` —
so that fine-tuning can freeze a prefix (``--finetune head`` or ``last:N``) and run it
without autograd. torchvision does not import beside the pinned torch, so the
inverted-residual (MobileNet-style) and residual (ResNet-style) nets are written here.

A user's own student is named ``pkg.module:factory``; the factory is called as
``factory(channels, classes, (height, width))`` and returns an ``nn.Module`` that maps
N×C×H×W floats to N×classes logits. It can be fine-tuned with ``--finetune head`` or
``last:N`` when it has ``blocks`` and ``head`` attributes (or is an ``nn.Sequential``,
whose last child is the head); otherwise only ``all``.

Vector stores (N×D features) train ``mlp`` or ``mlp-small``; a vector reaches a student as
N×1×1×D (channels 1, size 1×D) or N×D, which the MLP flattens alike.
"""

from __future__ import annotations

import importlib
import re

import torch
import torch.nn as nn

from .errors import ModelError

__all__ = ["ARCHS", "VECTOR_ARCHS", "Student", "build_student", "split_for_finetune", "describe_student", "macs"]


def _cbr(i: int, o: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


class Student(nn.Module):
    """stem → blocks → head; ``frozen`` leading parts (stem and the first blocks) run without autograd."""

    def __init__(self, stem: nn.Module, blocks: list[nn.Module], head: nn.Module):
        super().__init__()
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.frozen = 0  # 0: train everything; n ≥ 1: stem and blocks[: n − 1] are frozen

    def train(self, mode: bool = True) -> Student:
        super().train(mode)
        if mode and self.frozen:  # frozen parts keep their batch-norm statistics
            for m in [self.stem, *self.blocks][: self.frozen]:
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self.stem, *self.blocks]
        if self.frozen and self.training:
            with torch.no_grad():  # no activations kept where no gradient flows
                for m in parts[: self.frozen]:
                    x = m(x)
            parts = parts[self.frozen :]
        for m in parts:
            x = m(x)
        return self.head(x)


def cnn_small(channels: int, classes: int, width: int = 16) -> Student:
    """Three conv blocks and a linear head over a 3×3 map (~2M MACs at 28×28, width 16)."""
    w = width
    return Student(
        nn.Sequential(*_cbr(channels, w)),
        [nn.Sequential(nn.MaxPool2d(2), *_cbr(w, 2 * w)), nn.Sequential(nn.MaxPool2d(2), *_cbr(2 * w, 4 * w))],
        nn.Sequential(nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(4 * w * 9, classes)),
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


def resnet(channels: int, classes: int, width: int = 16, blocks: int = 1, stages: int = 3, stride0: int = 1) -> Student:
    """ResNet-8 (blocks=1, 3 stages), a narrow ResNet-18 (blocks=2, 4 stages); ``stride0`` 2 for ≥ 64 px."""
    stem = nn.Sequential(*_cbr(channels, width, stride0))  # built first: parameter init order as before
    layers: list[nn.Module] = []
    c = width
    for s in range(stages):
        o = width * 2**s
        for b in range(blocks):
            layers.append(_Basic(c, o, 2 if (s > 0 and b == 0) else 1))
            c = o
    return Student(stem, layers, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)))


class _InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand → 3×3 depthwise → 1×1 project, residual when shapes agree."""

    def __init__(self, i: int, o: int, stride: int, expand: int):
        super().__init__()
        h = i * expand
        self.use_res = stride == 1 and i == o
        self.body = nn.Sequential(
            nn.Conv2d(i, h, 1, bias=False),
            nn.BatchNorm2d(h),
            nn.ReLU6(inplace=True),
            nn.Conv2d(h, h, 3, stride=stride, padding=1, groups=h, bias=False),
            nn.BatchNorm2d(h),
            nn.ReLU6(inplace=True),
            nn.Conv2d(h, o, 1, bias=False),
            nn.BatchNorm2d(o),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.use_res else y


def mobilenet(channels: int, classes: int, size: tuple[int, int] = (32, 32), width: float = 1.0) -> Student:
    """A MobileNetV2-style net for 28–128 px inputs: stride-2 stem only from 64 px on."""

    def ch(c: int) -> int:
        return max(8, int(round(c * width / 8)) * 8)

    # (expand, out channels, repeats, stride)
    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2), (6, 96, 1, 1)]
    stem_stride = 2 if min(size) >= 64 else 1
    stem = nn.Sequential(
        nn.Conv2d(channels, ch(32), 3, stride=stem_stride, padding=1, bias=False),
        nn.BatchNorm2d(ch(32)),
        nn.ReLU6(inplace=True),
    )
    blocks: list[nn.Module] = []
    c = ch(32)
    for t, o, n, s in cfg:
        for r in range(n):
            blocks.append(_InvertedResidual(c, ch(o), s if r == 0 else 1, t))
            c = ch(o)
    last = ch(256)
    blocks.append(nn.Sequential(nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(inplace=True)))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(last, classes))
    return Student(stem, blocks, head)


def mlp(channels: int, classes: int, size: tuple[int, int], width: int = 256, hidden: int = 2) -> Student:
    """A multilayer perceptron for feature vectors (a vector store's items: N×D, or any input flattened):
    ``hidden`` layers of ``width`` (linear, batch norm, ReLU, dropout 0.1) and a linear head."""
    d = channels * size[0] * size[1]

    def layer(i: int) -> nn.Module:
        return nn.Sequential(nn.Linear(i, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True), nn.Dropout(0.1))

    stem = nn.Sequential(nn.Flatten(1), layer(d))
    return Student(stem, [layer(width) for _ in range(hidden - 1)], nn.Linear(width, classes))


VECTOR_ARCHS = ("mlp", "mlp-small")  # the students of vector stores (the first is their default)

ARCHS = {
    "cnn-small": lambda ch, k, size: cnn_small(ch, k),
    "cnn-w8": lambda ch, k, size: cnn_small(ch, k, width=8),  # ~7.6k parameters: for the smallest devices
    "cnn-w4": lambda ch, k, size: cnn_small(ch, k, width=4),  # ~2k parameters
    "resnet8": lambda ch, k, size: resnet(ch, k, 16, 1, 3, 2 if min(size) >= 64 else 1),
    "resnet18-narrow": lambda ch, k, size: resnet(ch, k, 16, 2, 4, 2 if min(size) >= 64 else 1),
    "mobilenet": lambda ch, k, size: mobilenet(ch, k, size),
    "mobilenet-half": lambda ch, k, size: mobilenet(ch, k, size, width=0.5),
    "mlp": lambda ch, k, size: mlp(ch, k, size),  # ~270k parameters at D = 784
    "mlp-small": lambda ch, k, size: mlp(ch, k, size, width=128, hidden=1),  # ~100k parameters at D = 784
}
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _user_factory(spec: str):
    mod, attr = spec.split(":")
    try:
        return getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load the student factory {spec!r}: {e}") from e


def build_student(arch: str, channels: int, classes: int, size: tuple[int, int] = (28, 28)) -> nn.Module:
    """A built-in student by name, or ``pkg.module:factory`` called as ``factory(channels, classes, size)``."""
    if arch in ARCHS:
        return ARCHS[arch](channels, classes, tuple(size))
    if _FACTORY.match(arch):
        shape = f"{channels} channel(s), {classes} classes, size {size[0]}×{size[1]} (the store's items)"
        try:
            model = _user_factory(arch)(channels, classes, tuple(size))
        except ValueError:
            raise
        except Exception as e:  # the operator's own code: any failure, named with what it was given
            raise ModelError(f"the student factory {arch!r} failed on {shape}: {type(e).__name__}: {e}") from e
        if not isinstance(model, nn.Module):
            raise ValueError(f"the student factory {arch!r} returned {type(model).__name__}, not a torch.nn.Module")
        try:
            with torch.no_grad():
                out = model.eval()(torch.zeros(2, channels, *size))
        except Exception as e:
            raise ModelError(
                f"the student {arch!r} cannot run on a batch of 2×{channels}×{size[0]}×{size[1]} ({shape}): "
                f"{type(e).__name__}: {e}"
            ) from e
        if tuple(out.shape) != (2, classes):
            raise ValueError(
                f"the student {arch!r} maps 2×{channels}×{size[0]}×{size[1]} to {tuple(out.shape)}, not 2×{classes}"
            )
        return model
    raise ValueError(
        f"unknown student architecture {arch!r}; built-ins: {', '.join(ARCHS)}, or your own as pkg.module:factory"
    )


def split_for_finetune(model: nn.Module, finetune: str) -> nn.Module:
    """Freeze what ``finetune`` leaves alone: ``all`` (nothing), ``head`` (all but the head) or ``last:N``
    (all but the last N blocks and the head). Frozen parameters get ``requires_grad = False`` and, in a
    :class:`Student`, run without autograd with their batch-norm statistics fixed."""
    if finetune == "all":
        return model
    m = re.fullmatch(r"head|last:(\d+)", finetune)
    if not m:
        raise ValueError(f"--finetune must be all, head or last:N, not {finetune!r}")
    n = 0 if finetune == "head" else int(m.group(1))
    if isinstance(model, Student):
        parts = [model.stem, *model.blocks]
    elif hasattr(model, "blocks") and hasattr(model, "head"):
        parts = list(model.blocks)
    elif isinstance(model, nn.Sequential) and len(model) > 1:
        parts = list(model)[:-1]
    else:
        raise ValueError("this student has no blocks/head structure: only --finetune all applies")
    if n > len(parts):
        raise ValueError(f"--finetune last:{n}: the student has {len(parts)} blocks")
    frozen = parts[: len(parts) - n]
    for p in model.parameters():
        p.requires_grad_(True)
    for part in frozen:
        for p in part.parameters():
            p.requires_grad_(False)
    if isinstance(model, Student):
        model.frozen = len(frozen)
    return model


def macs(model: nn.Module, channels: int, size: tuple[int, int]) -> int:
    """Multiply-accumulates of one forward pass (convolutions and linear layers)."""
    total = 0

    def conv(m, inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += out.numel() * k

    def lin(m, inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    hooks = [
        m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else lin)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, channels, *size))
    model.train(was)
    for h in hooks:
        h.remove()
    return int(total)


def describe_student(arch: str, channels: int, size: tuple[int, int], classes: int = 10) -> dict:
    model = build_student(arch, channels, classes, size)
    return {
        "arch": arch,
        "params": sum(p.numel() for p in model.parameters()),
        "macs": macs(model, channels, size),
        "blocks": len(model.blocks) + 1 if isinstance(model, Student) else None,
    }
