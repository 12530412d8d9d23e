"""The NAS-Bench-201 cell search space (Dong & Yang, ICLR 2020).

NAS-Bench-201 ("NB201", also NATS-Bench TSS) fixes a CIFAR macro skeleton and
varies one 4-node cell that is repeated 15 times. Each of the cell's 6 edges
carries one of 5 ops, so the space holds 5**6 = 15,625 architectures.

This module provides:

* the encodings used in the wild and conversions between them
  (official cell string, official API index, NASLib 6-tuple);
* ``build_network``: a from-scratch PyTorch re-implementation of the network
  NB201 trained (``TinyNetwork`` / ``InferCell`` in the authors' code);
* parameter / FLOP counters, both hook-based (on a built net) and analytic
  (from the arch alone, fast enough to sweep the whole space).

Encodings
---------
An architecture is a tuple of 6 op names in the *official edge order*
``EDGES`` = (0→1), (0→2), (1→2), (0→3), (1→3), (2→3), i.e. grouped by the
destination node. The official string writes the same order node by node::

    |op~0|+|op~0|op~1|+|op~0|op~1|op~2|

NASLib orders edges by source node instead and numbers ops differently, see
``NASLIB_EDGES`` and ``NASLIB_OPS``.

The official index is the position in the benchmark file. NB201 generated it by
enumerating all cells lexicographically (``CellStructure.gen_all`` over the op
list ``OPS``, first edge varying slowest) and then calling
``random.seed(88); random.shuffle(archs)``. We replay that here, so no
benchmark file is needed at runtime; ``_check_anchors`` guards against a future
change of Python's shuffle algorithm.

FLOP / parameter conventions
----------------------------
``count_flops`` / ``describe`` default to ``convention="naslib"``: the numbers
NAS-Bench-Suite-Zero (NASLib, zero-cost branch) published as its ``flops`` and
``params`` proxies. NASLib measured them with ``tensorwatch.ModelStats``
(a torchstat fork) on a batch-1 input, summing over every *executed* leaf module:

* Conv2d: ``k_h*k_w*C_in*C_out/groups*H_out*W_out`` (+ ``C_out*H_out*W_out`` if bias);
* BatchNorm2d: ``numel(input)``, doubled when affine;
* ReLU: ``numel(input)``;
* AvgPool2d: ``C*H_out*W_out*k*k``;
* AdaptiveAvgPool2d: per output cell ``C*(h_span+1)*(w_span+1)``
  (torchstat's off-by-one is reproduced, for 8x8→1x1 it is ``C*81``);
* Linear: ``in*out`` (bias not counted);
* identity, zero and flatten: nothing.

Parameters are simply all trainable parameters: NASLib's builder turns the
chosen cell ops' BatchNorms affine, so the network is parameter-for-parameter
NB201's ``TinyNetwork``. ``convention="nb201"`` reproduces the authors'
``get_model_infos`` instead: only Conv2d and Linear (with bias) are counted.

Ops on edges that reach no output ("dangling" ops) are built and counted, as
NASLib executes every edge. The published NAS-Bench-Suite-Zero table only
holds cells without dangling ops, so that case is not checked against data.
"""

from __future__ import annotations

import ast
import functools
import itertools
import math
import operator
import random
from typing import Sequence

import torch
from torch import nn

from gpproxy.errors import ArchError

from ._common import count_params, naslib_flops, weight_layers

__all__ = [
    "OPS",
    "EDGES",
    "NASLIB_OPS",
    "NASLIB_EDGES",
    "NUM_ARCHS",
    "parse_arch",
    "format_arch",
    "to_naslib",
    "from_naslib",
    "arch_to_index",
    "index_to_arch",
    "all_archs",
    "build_network",
    "init_weights",
    "count_params",
    "count_flops",
    "layer_specs",
    "analytic_params",
    "analytic_flops",
    "describe",
    "InferCell",
    "ResNetBasicBlock",
    "ReLUConvBN",
    "Zero",
    "NB201Network",
]

# ---------------------------------------------------------------------------
# Encodings
# ---------------------------------------------------------------------------

#: Op names in the order of NB201's search-space list; this order defines the index.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: Official edge order (source, destination), grouped by destination node.
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
#: NASLib's edge order, grouped by source node.
NASLIB_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
#: NASLib op ids: ``NASLIB_OPS[i]`` is the op NASLib calls ``i``.
NASLIB_OPS: tuple[str, ...] = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
NUM_ARCHS = len(OPS) ** len(EDGES)

# Permutation taking NASLib positions to official positions.
_NASLIB_POS = tuple(NASLIB_EDGES.index(edge) for edge in EDGES)
_SHUFFLE_SEED = 88  # NB201's exps/NAS-Bench-201/main.py: random.seed(88)
# Checked in NB201's own generator script; a mismatch means Python's shuffle changed.
_ANCHORS = {
    0: "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    9: "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    123: "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|",
}


def _show(value: object, limit: int = 120) -> str:
    """repr() of a bad input, kept on one line and short enough for a CLI error."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_ops(ops: Sequence[str]) -> tuple[str, ...]:
    """Validate a 6-tuple of op names (official edge order) and return it as a tuple."""
    if isinstance(ops, str) or not isinstance(ops, (tuple, list)):
        raise ArchError(f"NB201 arch must be a sequence of 6 op names, got {_show(ops)}")
    if len(ops) != len(EDGES):
        raise ArchError(f"NB201 arch needs {len(EDGES)} ops, got {len(ops)} in {_show(ops)}")
    for op in ops:
        if op not in OPS:
            raise ArchError(f"unknown NB201 op {_show(op)} in {_show(ops)}; expected one of {', '.join(OPS)}")
    return tuple(ops)


def format_arch(ops: Sequence[str]) -> str:
    """Official NB201 cell string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
    ops = _check_ops(ops)
    nodes, pos = [], 0
    for dst in range(1, 4):
        nodes.append("|" + "|".join(f"{ops[pos + src]}~{src}" for src in range(dst)) + "|")
        pos += dst
    return "+".join(nodes)


def _parse_cell_string(text: str) -> tuple[str, ...]:
    """Parse the official string; the ``~j`` suffixes must name inputs 0..i-1 in order."""
    nodes = text.split("+")
    if len(nodes) != 3:
        raise ArchError(f"NB201 arch string needs 3 '+'-separated nodes, got {len(nodes)} in {_show(text)}")
    ops: list[str] = []
    for dst, node in enumerate(nodes, start=1):
        if len(node) < 2 or not (node.startswith("|") and node.endswith("|")):
            raise ArchError(f"NB201 node {dst} must look like '|op~0|...|', got {_show(node)} in {_show(text)}")
        entries = node[1:-1].split("|")
        if len(entries) != dst:
            raise ArchError(f"NB201 node {dst} needs {dst} edge(s), got {len(entries)} in {_show(text)}")
        for src, entry in enumerate(entries):
            op, sep, inp = entry.partition("~")
            if not sep or inp != str(src):
                raise ArchError(f"NB201 edge {_show(entry)} of node {dst} must read 'op~{src}' in {_show(text)}")
            if op not in OPS:
                raise ArchError(f"unknown NB201 op {_show(op)} in {_show(text)}; expected one of {', '.join(OPS)}")
            ops.append(op)
    return tuple(ops)


def _parse_naslib_text(text: str) -> tuple[str, ...]:
    """Parse ``"(4, 0, 3, 1, 4, 3)"`` (or ``[...]``) safely, without eval."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ArchError(f"NB201 NASLib tuple is not a list of ints: {_show(text)}") from None
    if not isinstance(value, (tuple, list)):
        raise ArchError(f"NB201 NASLib tuple is not a list of ints: {_show(text)}")
    return from_naslib(value)


def to_naslib(ops: Sequence[str]) -> tuple[int, ...]:
    """NASLib 6-tuple (NASLib edge and op order) for an arch in official edge order."""
    ops = _check_ops(ops)
    by_edge = dict(zip(EDGES, ops))
    return tuple(NASLIB_OPS.index(by_edge[edge]) for edge in NASLIB_EDGES)


def from_naslib(code: Sequence[int]) -> tuple[str, ...]:
    """Arch (official edge order) from a NASLib 6-tuple of op ids 0..4."""
    if isinstance(code, str) or not isinstance(code, (tuple, list)):
        raise ArchError(f"NB201 NASLib code must be a sequence of 6 ints, got {_show(code)}")
    if len(code) != len(NASLIB_EDGES):
        raise ArchError(f"NB201 NASLib code needs 6 op ids, got {len(code)} in {_show(code)}")
    ids = []
    for value in code:
        if isinstance(value, bool) or not _is_int(value) or not 0 <= operator.index(value) < len(NASLIB_OPS):
            raise ArchError(f"NB201 NASLib op id {_show(value)} in {_show(code)} is not an int in 0..4")
        ids.append(operator.index(value))
    return tuple(NASLIB_OPS[ids[pos]] for pos in _NASLIB_POS)


def _is_int(value: object) -> bool:
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _archs_in_index_order() -> tuple[tuple[str, ...], ...]:
    """Replay NB201's enumeration + seeded shuffle (see module docstring)."""
    archs = list(itertools.product(OPS, repeat=len(EDGES)))
    random.Random(_SHUFFLE_SEED).shuffle(archs)
    for index, expected in _ANCHORS.items():
        if format_arch(archs[index]) != expected:
            raise RuntimeError(
                f"NB201 index replay broke at index {index} (did Python's random.shuffle change?)"
            )
    return tuple(archs)


@functools.lru_cache(maxsize=1)
def _index_of() -> dict[tuple[str, ...], int]:
    return {arch: i for i, arch in enumerate(_archs_in_index_order())}


def index_to_arch(index: int) -> tuple[str, ...]:
    """Arch at the official NB201 / NATS-Bench-TSS API index (0..15624)."""
    if isinstance(index, bool) or not _is_int(index):
        raise ArchError(f"NB201 index must be an int, got {_show(index)}")
    i = operator.index(index)
    if not 0 <= i < NUM_ARCHS:
        raise ArchError(f"NB201 index {i} is out of range 0..{NUM_ARCHS - 1}")
    return _archs_in_index_order()[i]


def arch_to_index(ops: Sequence[str]) -> int:
    """Official NB201 / NATS-Bench-TSS API index of an arch."""
    return _index_of()[_check_ops(ops)]


def all_archs() -> list[tuple[str, ...]]:
    """All 15,625 archs, position i holding index i (a fresh list each call)."""
    return list(_archs_in_index_order())


def parse_arch(arch: object) -> tuple[str, ...]:
    """Read any supported NB201 encoding; return the 6 ops in official edge order.

    Accepted: the official cell string; NASLib tuple text such as
    ``"(4, 0, 3, 1, 4, 3)"``; a tuple/list of 6 NASLib op ids; a tuple/list of
    6 op names (official order, returned unchanged); an official index as an
    int or a decimal string. Anything else raises ``ArchError``.
    """
    if isinstance(arch, str):
        text = arch.strip()
        if text.startswith("|"):
            return _parse_cell_string(text)
        if text.startswith(("(", "[")):
            return _parse_naslib_text(text)
        if text.isdecimal():
            return index_to_arch(int(text))
        raise ArchError(
            f"cannot read NB201 arch {_show(arch)}: expected '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|', "
            "a NASLib tuple like '(4, 0, 3, 1, 4, 3)' or an index 0..15624"
        )
    if isinstance(arch, (tuple, list)):
        if arch and all(isinstance(x, str) for x in arch):
            return _check_ops(arch)
        return from_naslib(arch)
    if not isinstance(arch, bool) and _is_int(arch):
        return index_to_arch(arch)
    raise ArchError(f"cannot read NB201 arch of type {type(arch).__name__}: {_show(arch)}")


# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------


def _edge_key(src: int, dst: int) -> str:
    # ModuleDict keys may not contain '.', and "dst<-src" reads like NB201's node strings.
    return f"{dst}<-{src}"


class ReLUConvBN(nn.Module):
    """ReLU → Conv (no bias) → BN, NB201's ``nor_conv_kxk`` and the ResNet block's halves."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__()
        self.op = nn.Sequential(
            # Not in-place: the input is shared with other edges and with proxy hooks.
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=True, track_running_stats=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Zero(nn.Module):
    """NB201's ``none`` op: an all-zero tensor that still depends on the input.

    ``x.mul(0.)`` rather than ``torch.zeros_like`` keeps NB201's behaviour
    (NaN/inf propagate, and the output is in the autograd graph).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _make_op(name: str, channels: int) -> nn.Module:
    """One cell edge; every cell edge keeps shape (stride 1, C→C)."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ArchError(f"unknown NB201 op {_show(name)}; expected one of {', '.join(OPS)}")


class InferCell(nn.Module):
    """The NB201 cell: node j = Σ_{i<j} op_{i→j}(node i); node 3 is the output."""

    def __init__(self, ops: Sequence[str], channels: int):
        super().__init__()
        self.ops = _check_ops(ops)
        self.edges = nn.ModuleDict(
            {_edge_key(src, dst): _make_op(op, channels) for (src, dst), op in zip(EDGES, self.ops)}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for dst in range(1, 4):
            total = None
            for src in range(dst):
                out = self.edges[_edge_key(src, dst)](nodes[src])
                # Out-of-place add: ``+=`` would overwrite an op's output that
                # proxies may have hooked (and, for skip, the input itself).
                total = out if total is None else total + out
            nodes.append(total)
        return nodes[3]


class ResNetBasicBlock(nn.Module):
    """NB201's reduction block: stride-2 residual block doubling the channels."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, stride=1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """NB201's ``TinyNetwork``: stem, 3 stages of N cells, 2 reductions, BN-ReLU-GAP-FC.

    Unlike the authors' class, ``forward`` returns only the logits (their
    version returns ``(features, logits)``); ``features`` gives the pooled
    features.
    """

    def __init__(self, ops: Sequence[str], num_classes: int = 10, C: int = 16, N: int = 5):
        super().__init__()
        self.ops = _check_ops(ops)
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        self.cells = nn.ModuleList()
        channels = C
        for stage in range(3):
            if stage > 0:
                self.cells.append(ResNetBasicBlock(channels, 2 * channels))
                channels *= 2
            self.cells.extend(InferCell(self.ops, channels) for _ in range(N))
        # NB201 uses ReLU(inplace=True) here; in-place would clobber the BN
        # output that activation-based proxies hook, and is numerically the same.
        self.lastact = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return torch.flatten(self.global_pooling(self.lastact(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build_network(ops: object, num_classes: int = 10, C: int = 16, N: int = 5) -> NB201Network:
    """The network NB201 trained for ``ops`` (any encoding ``parse_arch`` reads).

    Defaults are NB201's: C=16 initial channels, N=5 cells per stage. Weights
    keep PyTorch's default init, as in NB201 and NAS-Bench-Suite-Zero (see
    ``init_weights``).
    """
    return NB201Network(parse_arch(ops), num_classes=num_classes, C=C, N=N)


def init_weights(net: nn.Module) -> nn.Module:
    """Re-draw ``net``'s weights the way NB201 and NAS-Bench-Suite-Zero had them.

    Neither applies a custom init: NB201's ``evaluate_for_seed`` builds
    ``TinyNetwork`` and trains it straight away, and NASLib's zero-cost runner
    builds the graph and scores it directly. So this is PyTorch's default
    ``reset_parameters`` (Kaiming-uniform with a=√5 for conv/linear, BN weight 1
    and bias 0) plus fresh BN running statistics. Returns ``net``.
    """
    for module in net.modules():
        # BatchNorm's reset_parameters also clears its running statistics.
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
    return net


# ---------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------

_CONVENTIONS = ("naslib", "nb201")


def _check_convention(convention: str) -> None:
    if convention not in _CONVENTIONS:
        raise ValueError(f"unknown FLOP convention {convention!r}; expected one of {', '.join(_CONVENTIONS)}")


def _adaptive_pool_cost(channels: int, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> int:
    # torchstat's formula counts (span + 1) per axis; reproduced because the
    # NAS-Bench-Suite-Zero numbers include it.
    (h, w), (oh, ow) = in_hw, out_hw
    total = 0
    for i in range(oh):
        span_h = math.ceil((i + 1) * h / oh) - math.floor(i * h / oh)
        for j in range(ow):
            span_w = math.ceil((j + 1) * w / ow) - math.floor(j * w / ow)
            total += (span_h + 1) * (span_w + 1)
    return channels * total


def _leaf_flops(spec: dict, convention: str) -> int:
    """FLOPs of one leaf layer per image (see the module docstring for the rules)."""
    kind = spec["type"]
    oh, ow = spec["out_hw"]
    if kind == "Conv2d":
        k = spec["kernel"]
        flops = k * k * spec["in_channels"] * spec["out_channels"] // spec["groups"] * oh * ow
        return flops + (spec["out_channels"] * oh * ow if spec["bias"] else 0)
    if kind == "Linear":
        flops = spec["in_channels"] * spec["out_channels"]
        # The official counter adds the bias, torchstat does not.
        return flops + (spec["out_channels"] if convention == "nb201" and spec["bias"] else 0)
    if convention == "nb201":
        return 0  # get_model_infos sums Conv and Linear only
    ih, iw = spec["in_hw"]
    if kind == "BatchNorm2d":
        return spec["in_channels"] * ih * iw * (2 if spec["affine"] else 1)
    if kind == "ReLU":
        return spec["in_channels"] * ih * iw
    if kind == "AvgPool2d":
        k = spec["kernel"]
        return spec["in_channels"] * oh * ow * k * k
    if kind == "AdaptiveAvgPool2d":
        return _adaptive_pool_cost(spec["in_channels"], (ih, iw), (oh, ow))
    return 0


def _leaf_params(spec: dict) -> int:
    kind = spec["type"]
    if kind == "Conv2d":
        k = spec["kernel"]
        weights = spec["in_channels"] // spec["groups"] * spec["out_channels"] * k * k
        return weights + (spec["out_channels"] if spec["bias"] else 0)
    if kind == "Linear":
        return spec["in_channels"] * spec["out_channels"] + (spec["out_channels"] if spec["bias"] else 0)
    if kind == "BatchNorm2d" and spec["affine"]:
        return 2 * spec["out_channels"]
    return 0


def count_flops(net: nn.Module, input_size: Sequence[int] = (1, 3, 32, 32), convention: str = "naslib") -> int:
    """FLOPs of one forward pass on a tensor of ``input_size``, counted by the one
    hook-based counter of all spaces (:mod:`gpproxy.spaces._common`).

    With the default batch of 1 this is per-image FLOPs. ``convention`` is
    ``"naslib"`` (NAS-Bench-Suite-Zero / tensorwatch, the default) or
    ``"nb201"`` (the authors' ``get_model_infos``: conv and linear layers with
    their biases); see the module docstring. Works on a net on any device,
    including ``meta``; training mode is restored.
    """
    _check_convention(convention)
    batch = int(input_size[0])
    shape = (1,) + tuple(input_size[1:])
    if convention == "naslib":
        return batch * naslib_flops(net, shape)
    per_image = 0
    for layer in weight_layers(net, shape):
        oh, ow = layer["out_hw"]
        bias = layer["out_channels"] * (oh * ow if layer["type"] == "Conv2d" else 1) if layer["bias"] else 0
        per_image += layer["macs"] + bias
    return batch * per_image


def layer_specs(ops: object, num_classes: int = 10, C: int = 16, N: int = 5,
                input_hw: tuple[int, int] = (32, 32)) -> list[dict]:
    """Every leaf layer of ``build_network(ops, ...)`` with its shapes, computed without torch.

    Names match ``named_modules()`` of the built network. Identity/zero edges
    are listed too (type ``Identity`` / ``Zero``) so the list mirrors the net.
    """
    arch = parse_arch(ops)
    specs: list[dict] = []
    hw = tuple(input_hw)

    def add(name, kind, c_in, c_out, in_hw, out_hw, **extra):
        specs.append({"name": name, "type": kind, "in_channels": c_in, "out_channels": c_out,
                      "in_hw": in_hw, "out_hw": out_hw, **extra})

    def conv(name, c_in, c_out, kernel, stride, in_hw):
        pad = kernel // 2
        out_hw = tuple((s + 2 * pad - kernel) // stride + 1 for s in in_hw)
        add(name, "Conv2d", c_in, c_out, in_hw, out_hw, kernel=kernel, stride=stride, groups=1, bias=False)
        return out_hw

    def relu_conv_bn(prefix, c_in, c_out, kernel, stride, in_hw):
        add(f"{prefix}.op.0", "ReLU", c_in, c_in, in_hw, in_hw)
        out_hw = conv(f"{prefix}.op.1", c_in, c_out, kernel, stride, in_hw)
        add(f"{prefix}.op.2", "BatchNorm2d", c_out, c_out, out_hw, out_hw, affine=True)
        return out_hw

    hw = conv("stem.0", 3, C, 3, 1, hw)
    add("stem.1", "BatchNorm2d", C, C, hw, hw, affine=True)
    channels, index = C, 0
    for stage in range(3):
        if stage > 0:
            prefix = f"cells.{index}"
            out_hw = relu_conv_bn(f"{prefix}.conv_a", channels, 2 * channels, 3, 2, hw)
            relu_conv_bn(f"{prefix}.conv_b", 2 * channels, 2 * channels, 3, 1, out_hw)
            add(f"{prefix}.downsample.0", "AvgPool2d", channels, channels, hw, out_hw, kernel=2)
            conv(f"{prefix}.downsample.1", channels, 2 * channels, 1, 1, out_hw)
            channels, hw, index = 2 * channels, out_hw, index + 1
        for _ in range(N):
            for (src, dst), op in zip(EDGES, arch):
                prefix = f"cells.{index}.edges.{_edge_key(src, dst)}"
                if op in ("nor_conv_1x1", "nor_conv_3x3"):
                    relu_conv_bn(prefix, channels, channels, 1 if op == "nor_conv_1x1" else 3, 1, hw)
                elif op == "avg_pool_3x3":
                    add(prefix, "AvgPool2d", channels, channels, hw, hw, kernel=3)
                else:
                    add(prefix, "Identity" if op == "skip_connect" else "Zero", channels, channels, hw, hw)
            index += 1
    add("lastact.0", "BatchNorm2d", channels, channels, hw, hw, affine=True)
    add("lastact.1", "ReLU", channels, channels, hw, hw)
    add("global_pooling", "AdaptiveAvgPool2d", channels, channels, hw, (1, 1))
    add("classifier", "Linear", channels, num_classes, (1, 1), (1, 1), kernel=1, stride=1, groups=1, bias=True)
    return specs


def analytic_params(ops: object, num_classes: int = 10, C: int = 16, N: int = 5) -> int:
    """``count_params(build_network(ops, ...))`` without building anything."""
    return sum(_leaf_params(spec) for spec in layer_specs(ops, num_classes, C, N))


def analytic_flops(ops: object, num_classes: int = 10, C: int = 16, N: int = 5,
                   input_hw: tuple[int, int] = (32, 32), convention: str = "naslib") -> int:
    """Per-image ``count_flops(build_network(ops, ...))`` without building anything."""
    _check_convention(convention)
    return sum(_leaf_flops(spec, convention) for spec in layer_specs(ops, num_classes, C, N, input_hw))


def describe(ops: object, num_classes: int = 10) -> dict:
    """Summary of one arch: encodings, cost (NAS-Bench-Suite-Zero convention) and weight layers.

    ``params`` and ``flops`` are integers (NAS-Bench-Suite-Zero's CSV stores
    them divided by 1e6). ``layers`` lists the Conv2d and Linear modules in
    network order with their shapes for a 32x32 input.
    """
    arch = parse_arch(ops)
    specs = layer_specs(arch, num_classes)
    weights = [
        {key: spec[key] for key in ("name", "type", "in_channels", "out_channels", "kernel", "stride", "groups",
                                     "out_hw")}
        for spec in specs
        if spec["type"] in ("Conv2d", "Linear")
    ]
    return {
        "arch_str": format_arch(arch),
        "index": arch_to_index(arch),
        "naslib": to_naslib(arch),
        "params": sum(_leaf_params(spec) for spec in specs),
        "flops": sum(_leaf_flops(spec, "naslib") for spec in specs),
        "n_layers": len(weights),
        "layers": weights,
    }
