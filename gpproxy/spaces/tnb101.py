"""TransNAS-Bench-101 (Duan et al., CVPR 2021): its micro (cell) and macro (skeleton) spaces.

Every TransNAS-Bench-101 ("TNB101") network is named by a string
``<base>-<skeleton>-<cell>``:

* ``base`` is the stem's output width (64 in the benchmark);
* ``skeleton`` has one digit per module; each module is 2 cells. Digit 1 keeps
  the shape, 2 doubles the channels, 3 halves the resolution (stride 2) and 4
  does both. The change happens in the module's first cell;
* ``cell`` is ``basic`` (a ResNet basic block; the *macro* space) or
  ``a_bc_def`` (the *micro* space): a 4-node cell whose 6 edges, in NB201's
  order (0→1), (0→2), (1→2), (0→3), (1→3), (2→3), carry op codes
  0 = none, 1 = skip (a factorized reduce when the edge changes stride or
  width), 2 = ReLU-Conv1x1-BN, 3 = ReLU-Conv3x3-BN. Node ``j`` sums its
  in-edges; node 3 is the output. Only edges leaving node 0 stride or widen.

The micro space is the 4**6 = 4,096 cells on skeleton ``64-41414``; the macro
space is the 3,256 skeletons of 4 to 6 digits with 1 to 4 resolution halvings
and 1 to 3 channel doublings, all with basic blocks. ``all_archs`` enumerates
both (micro: cell codes in lexicographic order; macro: by length, then
lexicographic); that order is ours, not the official API's index order.

The network (``MacroNet`` in the authors' ``lib/models/net_infer``) is: stem
Conv3x3/2 (3→base/2) + BN, then ReLU-Conv3x3/2-BN (base/2→base); the modules;
then, for the classification tasks, global average pooling and a linear layer
(the official ``FFDecoder``: class_object 100-way, class_scene 63-way;
room_layout regresses 9 numbers with the same head). Two quirks of the
official code are reproduced on purpose:

* the basic block has no ReLU after its residual sum, and its shortcut
  BatchNorm is built as ``BatchNorm2d(planes, affine, track_running_stats)``,
  i.e. with ``eps=1.0`` and ``momentum=1.0`` (positional arguments);
* convs get Kaiming-normal init (fan_out, ReLU gain), BNs 1/0; the head keeps
  PyTorch's default init.

Dense tasks (``segmentsemantic``, ``normal``, ``autoencoder``) and
``jigsaw`` use task decoders (a conv/deconv decoder, a GAN, a 9-tile siamese
head) that are the same for every architecture up to their input width. We do
not build them: ``build(arch, num_classes)`` always returns the searched encoder
plus the global-pool + linear head with ``num_classes`` outputs, and its
forward returns those ``num_classes`` values ("logits"). Zero-cost statistics
are thus taken on the encoder with a linear probe head, for every task.

Verified: parameter counts and FLOPs equal those NAS-Bench-Suite-Zero (NASLib)
published for the official model of each arch (encoder + FFDecoder; all 711
micro and 662 macro archs of its class_scene file, FLOPs at a 256x256 input),
see ``tests/test_spaces_tnb101.py``. The benchmark's own input is 256x256 RGB;
the network is fully convolutional up to the global pooling, so any resolution
>= 32 works.

Differences that only matter off the official spaces: for a skeleton digit 2
(double channels without stride) the official ``Zero`` op returns a tensor one
pixel too large and the cell crashes; ours returns the right shape.
"""
from __future__ import annotations

import ast
import itertools
import operator
import re
from typing import Sequence

import torch
from torch import nn

from gpproxy.errors import ArchError

from ._common import count_params, describe_network, naslib_flops, show

__all__ = [
    "OP_CODES",
    "EDGES",
    "MICRO_SKELETON",
    "BASE_WIDTH",
    "NUM_MICRO",
    "NUM_MACRO",
    "parse_arch",
    "format_arch",
    "canonical",
    "arch_key",
    "from_naslib",
    "all_archs",
    "is_official",
    "build_network",
    "analytic_params",
    "describe",
    "TNB101Network",
    "MicroCell",
    "BasicBlock",
    "count_params",
    "naslib_flops",
]

#: Op code -> name (official ``cell_ops.OPS`` keys).
OP_CODES = {"0": "none", "1": "skip_connect", "2": "conv_1x1", "3": "conv_3x3"}
#: Cell edges (source, destination) in the order of the ``a_bc_def`` digits.
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
MICRO_SKELETON = "41414"
BASE_WIDTH = 64
NUM_MICRO = 4 ** 6
NUM_MACRO = 3256
SPACES = ("micro", "macro")

_ARCH_RE = re.compile(r"^(\d+)-([1-4]+)-(basic|[0-3]_[0-3]{2}_[0-3]{3})$")
_CELL_RE = re.compile(r"^[0-3]_[0-3]{2}_[0-3]{3}$")


# --------------------------------------------------------------------------- #
# Encodings
# --------------------------------------------------------------------------- #


def format_arch(base: int, skeleton: str, cell: str) -> str:
    return f"{base}-{skeleton}-{cell}"


def _check_space(space: str | None) -> None:
    if space is not None and space not in SPACES:
        raise ArchError(f"unknown TNB101 space {space!r}; expected 'micro' or 'macro'")


def from_naslib(code: Sequence[int], space: str) -> str:
    """Arch string of a NASLib / NAS-Bench-Suite-Zero op tuple.

    Micro: 6 op codes (NASLib keeps TNB101's codes) -> ``64-41414-a_bc_def``.
    Macro: up to 6 skeleton digits padded with trailing zeros -> ``64-<digits>-basic``.
    """
    _check_space(space)
    if space is None:
        raise ArchError("a NASLib TNB101 tuple needs the space ('micro' or 'macro')")
    if isinstance(code, str) or not isinstance(code, (list, tuple)):
        raise ArchError(f"TNB101 NASLib code must be a sequence of ints, got {show(code)}")
    try:
        digits = [operator.index(v) for v in code if not isinstance(v, bool)]
    except TypeError:
        raise ArchError(f"TNB101 NASLib code must hold ints, got {show(code)}") from None
    if len(digits) != len(code):
        raise ArchError(f"TNB101 NASLib code must hold ints, got {show(code)}")
    if space == "micro":
        if len(digits) != 6 or not all(0 <= d <= 3 for d in digits):
            raise ArchError(f"TNB101 micro code needs 6 op codes in 0..3, got {show(code)}")
        d = "".join(map(str, digits))
        return format_arch(BASE_WIDTH, MICRO_SKELETON, f"{d[0]}_{d[1:3]}_{d[3:]}")
    body = digits
    while body and body[-1] == 0:
        body = body[:-1]
    if not body or not all(1 <= d <= 4 for d in body):
        raise ArchError(f"TNB101 macro code needs digits 1..4 padded by trailing zeros, got {show(code)}")
    return format_arch(BASE_WIDTH, "".join(map(str, body)), "basic")


def parse_arch(arch: object, space: str | None = None) -> tuple[int, str, str]:
    """(base, skeleton, cell) of any accepted TNB101 encoding.

    Accepted: ``"64-41414-1_02_333"`` / ``"64-1234-basic"``; a NASLib tuple (or its
    text ``"(1, 0, 0, 2, 1, 0)"``, which needs ``space``); a bare micro cell
    ``"1_02_333"`` (base 64, skeleton 41414). With ``space`` given, a micro arch
    must have a cell code and a macro arch must be ``basic``.
    """
    _check_space(space)
    if isinstance(arch, (list, tuple)):
        return parse_arch(from_naslib(arch, space), space)
    if not isinstance(arch, str):
        raise ArchError(f"cannot read TNB101 arch of type {type(arch).__name__}: {show(arch)}")
    text = arch.strip()
    if text.startswith(("(", "[")):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ArchError(f"TNB101 NASLib tuple is not a list of ints: {show(text)}") from None
        if not isinstance(value, (list, tuple)):
            raise ArchError(f"TNB101 NASLib tuple is not a list of ints: {show(text)}")
        return parse_arch(from_naslib(value, space), space)
    if _CELL_RE.match(text):
        text = format_arch(BASE_WIDTH, MICRO_SKELETON, text)
    m = _ARCH_RE.match(text)
    if not m:
        raise ArchError(f"cannot read TNB101 arch {show(arch)}: expected '<base>-<skeleton digits 1-4>-"
                        "<a_bc_def with codes 0-3 | basic>', e.g. '64-41414-1_02_333' or '64-1234-basic'")
    base, skeleton, cell = int(m.group(1)), m.group(2), m.group(3)
    if base < 2 or base % 2:
        raise ArchError(f"TNB101 base width must be even and >= 2, got {base} in {show(arch)}")
    if space == "micro" and cell == "basic":
        raise ArchError(f"{text!r} is a macro-space arch (basic cell), not a micro one")
    if space == "macro" and cell != "basic":
        raise ArchError(f"{text!r} is a micro-space arch (cell {cell}), not a macro one")
    return base, skeleton, cell


def canonical(arch: object, space: str | None = None) -> str:
    return format_arch(*parse_arch(arch, space))


def arch_key(arch: object, space: str | None = None) -> str:
    """File-safe id: the canonical string itself (``64-41414-1_02_333``)."""
    return canonical(arch, space)


def _macro_ok(skeleton: str) -> bool:
    strides = sum(d in "34" for d in skeleton)
    doubles = sum(d in "24" for d in skeleton)
    return 4 <= len(skeleton) <= 6 and 1 <= strides <= 4 and 1 <= doubles <= 3


def is_official(arch: object, space: str | None = None) -> bool:
    """Whether ``arch`` is one of the benchmark's 4,096 micro or 3,256 macro networks."""
    base, skeleton, cell = parse_arch(arch, space)
    if base != BASE_WIDTH:
        return False
    if cell == "basic":
        return _macro_ok(skeleton)
    return skeleton == MICRO_SKELETON


def all_archs(space: str) -> list[str]:
    """Every official arch of ``space`` ('micro': 4,096; 'macro': 3,256)."""
    _check_space(space)
    if space == "micro":
        return [format_arch(BASE_WIDTH, MICRO_SKELETON, f"{c[0]}_{c[1]}{c[2]}_{c[3]}{c[4]}{c[5]}")
                for c in itertools.product("0123", repeat=6)]
    out = []
    for length in (4, 5, 6):
        for digits in itertools.product("1234", repeat=length):
            skeleton = "".join(digits)
            if _macro_ok(skeleton):
                out.append(format_arch(BASE_WIDTH, skeleton, "basic"))
    return out


# --------------------------------------------------------------------------- #
# Network
# --------------------------------------------------------------------------- #


class ReLUConvBN(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        self.ops = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out))

    def forward(self, x):
        return self.ops(x)


class Zero(nn.Module):
    """Op 0: zeros of the edge's output shape (multiplied from the input when the shape allows)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.c_in, self.c_out, self.stride = c_in, c_out, stride

    def forward(self, x):
        if self.c_in == self.c_out:
            return x[:, :, :: self.stride, :: self.stride].mul(0.0) if self.stride > 1 else x.mul(0.0)
        h = (x.shape[2] + self.stride - 1) // self.stride
        w = (x.shape[3] + self.stride - 1) // self.stride
        return x.new_zeros((x.shape[0], self.c_out, h, w))


class FactorizedReduce(nn.Module):
    """Op 1 across a stride/width change: ReLU, two offset 1x1 convs (stride s) concatenated, BN."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        halves = (c_out // 2, c_out - c_out // 2)
        self.convs = nn.ModuleList(nn.Conv2d(c_in, h, 1, stride=stride, bias=False) for h in halves)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = self.relu(x)
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.convs[0](x), self.convs[1](shifted)], dim=1))


def _edge_op(code: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    if code == "0":
        return Zero(c_in, c_out, stride)
    if code == "1":
        return nn.Identity() if stride == 1 and c_in == c_out else FactorizedReduce(c_in, c_out, stride)
    return ReLUConvBN(c_in, c_out, 1 if code == "2" else 3, stride)


class MicroCell(nn.Module):
    """The micro-space cell ``a_bc_def``; only edges leaving node 0 change stride/width."""

    def __init__(self, cell: str, c_in: int, c_out: int, stride: int):
        super().__init__()
        codes = cell.replace("_", "")
        self.edges = nn.ModuleList(
            _edge_op(code, c_in, c_out, stride) if src == 0 else _edge_op(code, c_out, c_out, 1)
            for code, (src, _dst) in zip(codes, EDGES))

    def forward(self, x):
        nodes = [x]
        k = 0
        for dst in range(1, 4):
            total = None
            for src in range(dst):
                out = self.edges[k](nodes[src])
                total = out if total is None else total + out
                k += 1
            nodes.append(total)
        return nodes[3]


class BasicBlock(nn.Module):
    """The macro-space cell: ReLUConvBN 3x3 (stride) -> ReLUConvBN 3x3, plus shortcut; no final ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            # The official code passes (affine, track_running_stats) positionally: eps=1, momentum=1.
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(c_out, eps=1.0, momentum=1.0))

    def forward(self, x):
        residual = self.downsample(x) if self.downsample is not None else x
        return residual + self.conv_b(self.conv_a(x))


def _module_plan(base: int, skeleton: str) -> list[tuple[int, int, int]]:
    """(c_in, c_out, stride) of each module's first cell."""
    plan, c = [], base
    for digit in skeleton:
        d = int(digit)
        c_out = 2 * c if d % 2 == 0 else c
        plan.append((c, c_out, 2 if d > 2 else 1))
        c = c_out
    return plan


class TNB101Network(nn.Module):
    """Stem, ``len(skeleton)`` modules of 2 cells, global average pooling, linear head."""

    def __init__(self, arch: object, num_classes: int = 100, space: str | None = None):
        super().__init__()
        base, skeleton, cell = parse_arch(arch, space)
        self.arch = format_arch(base, skeleton, cell)
        self.stem = nn.Sequential(
            nn.Conv2d(3, base // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(base // 2),
            ReLUConvBN(base // 2, base, 3, 2))

        def make(c_in, c_out, stride):
            return BasicBlock(c_in, c_out, stride) if cell == "basic" else MicroCell(cell, c_in, c_out, stride)

        self.layers = nn.ModuleList()
        c = base
        for c_in, c_out, stride in _module_plan(base, skeleton):
            self.layers.append(nn.Sequential(make(c_in, c_out, stride), make(c_out, c_out, 1)))
            c = c_out
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c, num_classes)
        self._kaiming_init()

    def _kaiming_init(self):
        # As MacroNet._kaiming_init; the head (FFDecoder) is created afterwards with default init.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(torch.flatten(self.global_pooling(x), 1))


def build_network(arch: object, num_classes: int = 100, space: str | None = None) -> TNB101Network:
    """Encoder + classification head of ``arch``; ``num_classes`` 100 = class_object, 63 = class_scene."""
    return TNB101Network(arch, num_classes=num_classes, space=space)


def analytic_params(arch: object, num_classes: int = 100, space: str | None = None) -> int:
    """``count_params(build_network(...))`` without building anything."""
    base, skeleton, cell = parse_arch(arch, space)

    def rcb(c_in, c_out, k):
        return k * k * c_in * c_out + 2 * c_out

    def edge(code, c_in, c_out, stride):
        if code == "0" or (code == "1" and stride == 1 and c_in == c_out):
            return 0
        if code == "1":
            return c_in * c_out + 2 * c_out
        return rcb(c_in, c_out, 1 if code == "2" else 3)

    def block(c_in, c_out, stride):
        if cell == "basic":
            down = c_in * c_out + 2 * c_out if (stride != 1 or c_in != c_out) else 0
            return rcb(c_in, c_out, 3) + rcb(c_out, c_out, 3) + down
        codes = cell.replace("_", "")
        return sum(edge(code, c_in, c_out, stride) if src == 0 else edge(code, c_out, c_out, 1)
                   for code, (src, _dst) in zip(codes, EDGES))

    total = 9 * 3 * (base // 2) + 2 * (base // 2) + rcb(base // 2, base, 3)
    c = base
    for c_in, c_out, stride in _module_plan(base, skeleton):
        total += block(c_in, c_out, stride) + block(c_out, c_out, 1)
        c = c_out
    return total + c * num_classes + num_classes


def describe(arch: object, num_classes: int = 100, space: str | None = None, resolution: int = 256) -> dict:
    """Canonical string, official-or-not, parameter count, MACs and weight layers at ``resolution``."""
    base, skeleton, cell = parse_arch(arch, space)
    text = format_arch(base, skeleton, cell)
    net = build_network(text, num_classes)
    return describe_network(net, (1, 3, resolution, resolution), arch=text, key=text,
                            space="tnb101_macro" if cell == "basic" else "tnb101_micro",
                            official=is_official(text), modules=len(skeleton))
