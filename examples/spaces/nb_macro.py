"""NAS-Bench-Macro (Su et al., "Prioritized Architecture Sampling with Monte-Carlo
Tree Search", CVPR 2021) as a gpproxy user space file.

The space: a 32-channel stem, then 8 searchable layers in 3 stages of 2, 3 and 3
layers; the first layer of each stage has stride 2 and doubles the width
(32 -> 64 -> 128 -> 256); then a 1x1 conv to 1280, global average pooling and a
linear classifier. An arch is 8 digits, one per layer:

* ``0`` identity (a 1x1 conv + BN, no ReLU, where the stride or width changes),
* ``1`` MobileNetV2 inverted residual, kernel 3, expansion 3,
* ``2`` MobileNetV2 inverted residual, kernel 5, expansion 6.

Canonical arch string: exactly 8 characters from ``012`` (``"02012100"``). The
benchmark's table keeps the leading zeros, so shorter, int-like spellings are
rejected rather than padded. ``archs()`` lists all 3**8 = 6,561 archs in the
benchmark's order (``00000000``, ``00000001``, ...).

Every parameter count equals the benchmark's ``params`` column and the conv/linear
multiply-accumulates of one 32x32 image equal its ``flops`` column (checked for all
6,561 archs by tests/test_example_spaces.py). Use it with ``space =
"examples/spaces/nb_macro.py"`` in a ``[[task]]``.
"""
from __future__ import annotations

import itertools

import torch
from torch import nn

N_LAYERS = 8
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# (layers, output channels) per stage; the first layer of each stage has stride 2.
STAGES = ((2, 64), (3, 128), (3, 256))
# digit -> (kernel, expansion) of the inverted residual; 0 is the identity layer.
BLOCKS = {"1": (3, 3), "2": (5, 6)}


class ConvBN(nn.Module):
    """Conv (no bias) + BN, optionally + ReLU: the unit every layer of the space is made of."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 relu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return torch.relu(x) if self.relu else x


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, depthwise kxk (carries the stride), 1x1 project."""

    def __init__(self, cin: int, cout: int, stride: int, kernel: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.residual = stride == 1 and cin == cout
        self.expand = ConvBN(cin, hidden)
        self.depthwise = ConvBN(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvBN(hidden, cout, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


class NBMacroNet(nn.Module):
    def __init__(self, arch: str, num_classes: int):
        super().__init__()
        self.stem = ConvBN(3, STEM_CHANNELS, 3)
        layers, cin, digits = [], STEM_CHANNELS, iter(arch)
        for depth, cout in STAGES:
            for i in range(depth):
                stride = 2 if i == 0 else 1
                digit = next(digits)
                if digit in BLOCKS:
                    layers.append(InvertedResidual(cin, cout, stride, *BLOCKS[digit]))
                elif stride != 1 or cin != cout:
                    layers.append(ConvBN(cin, cout, 1, stride, relu=False))
                else:
                    layers.append(nn.Identity())
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = ConvBN(cin, HEAD_CHANNELS)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.layers(self.stem(x)))
        return self.classifier(x.mean((2, 3)))


def canonical(arch: str) -> str:
    if not isinstance(arch, str) or len(arch) != N_LAYERS or set(arch) - set("012"):
        raise ValueError(f"NAS-Bench-Macro arch {arch!r} is not {N_LAYERS} digits from 0/1/2 "
                         f"(e.g. '02012100')")
    return arch


def archs() -> list[str]:
    return ["".join(digits) for digits in itertools.product("012", repeat=N_LAYERS)]


def build(arch: str, num_classes: int) -> nn.Module:
    return NBMacroNet(canonical(arch), num_classes)
